"""Codes mailed to an address (spec §3.6): "v" proves the address (registration, binding), "r" resets a
password. Ten minutes, single use; a verification code allows MAX_ATTEMPTS guesses.

The original kept codes in one process's map (lost on restart, unknown to other nodes); they live in the
`verification_codes` table here, as SHA-256 digests. A new code for the same purpose and address replaces
the old one. Taking a code is a conditional DELETE, so two requests racing with one code cannot both win.
"""

import hmac
import secrets
import time

from sqlalchemy import delete, select, update

from oneapi.extensions import db
from oneapi.models import VerificationCode
from oneapi.models.user import hash_secret

VERIFY, RESET = "v", "r"
LIFETIME = 600
MAX_ATTEMPTS = 5


def normalise(email):
    return (email or "").strip().lower()


def issue(purpose, email):
    """A new code for (purpose, email), committed; the code itself is returned to be mailed."""
    email = normalise(email)
    code = secrets.token_hex(3) if purpose == VERIFY else secrets.token_hex(16)
    now = int(time.time())
    db.session.execute(delete(VerificationCode).where(
        (VerificationCode.expires_at < now)
        | ((VerificationCode.purpose == purpose) & (VerificationCode.email == email))))
    db.session.add(VerificationCode(purpose=purpose, email=email, code_hash=hash_secret(code.lower()),
                                    attempts=0, expires_at=now + LIFETIME, created_at=now))
    db.session.commit()
    return code


def withdraw(purpose, email):
    """Forget the code (a mail that could not be sent)."""
    db.session.execute(delete(VerificationCode).where(VerificationCode.purpose == purpose,
                                                      VerificationCode.email == normalise(email)))
    db.session.commit()


def take(purpose, email, code):
    """True once for the right, unexpired code; the code is used up.

    A 6-character code allows MAX_ATTEMPTS guesses, each counted (a conditional UPDATE) before it is
    compared, so guesses racing on several workers cannot try more. A 128-bit reset token has no such limit:
    guessing it is hopeless, and a limit would let a stranger void someone else's link."""
    email, code = normalise(email), (code or "").strip().lower()
    if not email or not code or len(code) > 64:
        return False
    limited = purpose == VERIFY
    clauses = [VerificationCode.purpose == purpose, VerificationCode.email == email,
               VerificationCode.expires_at >= int(time.time())]
    if limited:
        clauses.append(VerificationCode.attempts < MAX_ATTEMPTS)
    row = db.session.execute(select(VerificationCode.id, VerificationCode.code_hash).where(*clauses)).first()
    if row is None:
        db.session.rollback()
        return False
    if limited:
        counted = db.session.execute(update(VerificationCode).where(
            VerificationCode.id == row.id, VerificationCode.attempts < MAX_ATTEMPTS)
            .values(attempts=VerificationCode.attempts + 1)).rowcount
        db.session.commit()
        if counted != 1:
            return False
    if not hmac.compare_digest(row.code_hash, hash_secret(code)):
        db.session.rollback()
        return False
    taken = db.session.execute(delete(VerificationCode).where(VerificationCode.id == row.id)).rowcount == 1
    db.session.commit()
    return taken
