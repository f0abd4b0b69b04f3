"""Getting an account and getting back into it (spec §3.5, §3.6), shared by /api and the pages:
registration with the site's switches and invitation rewards, verification and reset mail, password
reset, and binding an email address. Every error is a SignupError whose message is safe to show."""

import html
import logging
import re
import secrets
import smtplib
import ssl
from urllib.parse import urlencode

from flask import current_app
from sqlalchemy import select

from oneapi import background
from oneapi.extensions import db
from oneapi.models import LogType, User
from oneapi.models.user import STATUS_DELETED, STATUS_ENABLED
from oneapi.services import accounts, cache, ledger, mail, options, users, verification

log = logging.getLogger(__name__)
EMAIL_MAX = users.EMAIL_MAX
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")


class SignupError(Exception):
    pass


def check_email(email):
    email = verification.normalise(email)
    if not email or len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise SignupError(f"that is not a valid email address (at most {EMAIL_MAX} characters)")
    snapshot = options.current()
    if snapshot.bool("EmailDomainRestrictionEnabled"):
        allowed = {d.strip().lower() for d in snapshot.get("EmailDomainWhitelist").split(",") if d.strip()}
        if email.rsplit("@", 1)[1] not in allowed:
            raise SignupError("addresses of that domain are not accepted here; the administrator allows: "
                              + ", ".join(sorted(allowed)))
    return email


def email_taken(email, except_id=None):
    query = select(User.id).where(User.email == email, User.status != STATUS_DELETED)
    if except_id is not None:
        query = query.where(User.id != except_id)
    return db.session.scalar(query) is not None


def _site():
    snapshot = options.current()
    return snapshot.get("SystemName") or "One API"


def _send(email, subject, text, markup):
    try:
        mail.send([email], subject, text, markup)
    except mail.MailError as error:
        raise SignupError(f"the mail could not be sent: {error}") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as error:
        log.warning("mail to a user could not be sent: %s: %s", type(error).__name__, error)
        raise SignupError("the mail could not be sent; try again later or tell the administrator") from None


def _send_code(purpose, email, subject, text, markup):
    """Mail a code or link just issued; a mail that could not leave takes its code with it."""
    try:
        _send(email, subject, text, markup)
    except SignupError:
        verification.withdraw(purpose, email)
        raise


def send_verification(email):
    """Mail a 6-character code proving the address (registration and binding). An address that already has
    an account gets a mail saying so instead, and the caller the same answer: only the mailbox's owner
    learns that it is registered."""
    email = check_email(email)
    if email_taken(email):
        site = _site()
        _send(email, f"{site}: this address already has an account",
              f"Someone asked for a code to use this address on {site}, but an account already uses it.\n"
              "If it is yours, log in, or reset its password from the login page. If not, ignore this mail.\n",
              None)
        return
    code = verification.issue(verification.VERIFY, email)
    minutes = verification.LIFETIME // 60
    site = _site()
    _send_code(verification.VERIFY, email, f"{site}: your verification code",
               f"Your verification code is {code}\nIt is valid for {minutes} minutes.\n",
               f"<p>Your verification code is <strong>{html.escape(code)}</strong>.</p>"
               f"<p>It is valid for {minutes} minutes.</p>")


def send_reset_later(email, base_url):
    """Check what can be checked without looking anyone up, then look up and mail in the background: the
    answer, and its time, are the same whether the address has an account, and whether its mail can be sent."""
    email = verification.normalise(email)
    if not email or len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise SignupError("that is not a valid email address")
    if not base_url:
        raise SignupError("password reset by mail is not set up on this site (the administrator must set "
                          "ServerAddress, the site's public address, for the links)")
    if not mail.configured():
        raise SignupError("this site cannot send mail; ask an administrator to reset your password")
    app = current_app._get_current_object()

    def work():
        with app.app_context():
            try:
                send_reset(email, base_url)
            except SignupError as error:
                log.warning("a password-reset mail was not sent: %s", error)
            except Exception:
                log.exception("a password-reset mail failed")
            finally:
                db.session.remove()

    return background.start(work, name="oneapi-reset-mail")


def send_reset(email, base_url):
    """Mail a reset link when the address belongs to an enabled user; nothing otherwise."""
    email = verification.normalise(email)
    user = db.session.scalar(select(User).where(User.email == email, User.status == STATUS_ENABLED))
    if user is None:
        return
    token = verification.issue(verification.RESET, email)
    link = f"{base_url.rstrip('/')}/user/reset?{urlencode({'email': email, 'token': token})}"
    minutes = verification.LIFETIME // 60
    site = _site()
    _send_code(verification.RESET, email, f"{site}: reset your password",
               f"Someone asked to reset the password of {user.username} on {site}.\n"
               f"Open this link within {minutes} minutes to get a new password:\n{link}\n"
               "If it was not you, ignore this mail.\n",
               f"<p>Someone asked to reset the password of <strong>{html.escape(user.username)}</strong> on "
               f"{html.escape(site)}.</p><p><a href=\"{html.escape(link)}\">Reset the password</a> (valid for "
               f"{minutes} minutes).</p><p>If it was not you, ignore this mail.</p>")


def reset_password(email, token):
    """Use a reset link: the user gets a new random password, returned once; every session ends."""
    email = verification.normalise(email)
    if not verification.take(verification.RESET, email, token):
        raise SignupError("this reset link is invalid, expired or already used")
    user = db.session.scalar(select(User).where(User.email == email, User.status == STATUS_ENABLED))
    if user is None:
        raise SignupError("this reset link is invalid, expired or already used")
    password = secrets.token_urlsafe(9)  # 12 characters
    user.set_password(password)
    user.must_change_password = False
    cache.publish(accounts.user_topic(user.id))
    db.session.commit()
    return password


def register(username, password, *, email="", code="", aff_code=""):
    """A new user by the registration form (spec §3.5). Returns the user."""
    snapshot = options.current()
    if not snapshot.bool("RegisterEnabled"):
        raise SignupError("registration is closed on this site")
    if not snapshot.bool("PasswordRegisterEnabled"):
        raise SignupError("registration with a password is turned off; use one of the other ways to sign up")
    from oneapi.users.routes import validate_password

    try:
        username = users.validate_username(username)
    except users.UserError as error:
        raise SignupError(str(error)) from None
    validate_password(password)
    if users.username_taken(username):
        raise SignupError("that username is taken")
    if snapshot.bool("EmailVerificationEnabled"):
        if not email or not code:
            raise SignupError("an email address and its verification code are required")
        email = check_email(email)
        if not verification.take(verification.VERIFY, email, code):
            raise SignupError("the verification code is wrong or has expired")
        if email_taken(email):
            raise SignupError("this email address is already used by an account")
    else:
        email = ""  # an address nobody proved is not stored (as in the original)
    inviter_id = 0
    if aff_code:
        inviter_id = db.session.scalar(select(User.id).where(User.aff_code == aff_code.strip()[:32],
                                                             User.status == STATUS_ENABLED)) or 0
        if not inviter_id:
            raise SignupError("that invitation code is not valid")
    try:
        user = users.create(username, password, email=email, inviter_id=inviter_id)
    except users.UserError as error:
        raise SignupError(str(error)) from None
    if inviter_id:
        reward_invitation(user, inviter_id)
    return user


def reward_invitation(user, inviter_id):
    snapshot = options.current()
    invitee, inviter = snapshot.int("QuotaForInvitee"), snapshot.int("QuotaForInviter")
    if invitee > 0:
        ledger.top_up(user.id, invitee, f"invitation gift for a new user: {invitee} quota", LogType.SYSTEM)
    if inviter > 0:
        ledger.top_up(inviter_id, inviter, f"invitation reward: {user.username} registered, {inviter} quota",
                      LogType.SYSTEM)


def bind_email(user, email, code):
    email = check_email(email)
    if not verification.take(verification.VERIFY, email, code):
        raise SignupError("the verification code is wrong or has expired")
    if email_taken(email, except_id=user.id):
        raise SignupError("this email address is already used by another account")
    user.email = email
    cache.publish(accounts.user_topic(user.id))
    db.session.commit()
