"""Sending mail with the SMTP options (spec §3.6), read afresh for every message, so a change in the
settings applies to the next mail on every node.

Verified TLS: implicit TLS on port 465, STARTTLS elsewhere whenever the server offers it, and the
password is never sent over an unencrypted connection except to a server on this machine (the original
skipped certificate checks on 465, spec §12.9). Flask-Mail builds the message; smtplib sends it, since
Flask-Mail 0.10 does not verify certificates. No auth is attempted when account and token are empty.
"""

import ipaddress
import re
import smtplib
import ssl

from flask import current_app
from flask_mail import Mail, Message

from oneapi.services import options

SMTP_TIMEOUT = 15
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SETTINGS = ("SystemName", "SMTPServer", "SMTPPort", "SMTPAccount", "SMTPFrom", "SMTPToken")


class MailError(Exception):
    pass


def _clean(text, limit):
    return _CONTROL.sub(" ", str(text or "")).strip()[:limit]


def configured():
    return bool(options.current().get("SMTPServer").strip())


def send(recipients, subject, body, html=None):
    """One message with the current options; raises MailError (safe to show) or an SMTP/TLS error."""
    snapshot = options.current()
    if not snapshot.get("SMTPServer").strip():
        raise MailError("sending mail is not configured (SMTPServer is empty)")
    send_email({key: snapshot.get(key) for key in SETTINGS}, recipients, subject, body, html)


def tls_context():
    """Certificates and host names are verified (tests replace this to trust their own CA)."""
    return ssl.create_default_context()


def _local(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _message_bytes(subject, recipients, body, sender, html=None):
    # Flask-Mail reads one setting of its extension state while rendering; this app sends no mail through
    # Flask-Mail itself, so give it a default state when nothing registered one.
    if "mail" not in current_app.extensions:
        current_app.extensions.setdefault("mail", Mail().init_mail(current_app.config, current_app.debug,
                                                                   current_app.testing))
    message = Message(subject=_clean(subject, 200), recipients=list(recipients), body=body, html=html, sender=sender)
    if message.has_bad_headers():
        raise MailError("the message has a header with a line break")
    return message.as_bytes()


def send_email(settings, recipients, subject, body, html=None):
    """Send one mail with the SMTP options, over verified TLS whenever the server can do it."""
    server = settings["SMTPServer"].strip()
    try:
        port = int(settings["SMTPPort"] or 587)
    except ValueError:
        raise MailError("SMTPPort is not a number") from None
    account, token = settings["SMTPAccount"], settings["SMTPToken"]
    address = (settings["SMTPFrom"] or account).strip()
    if not address:
        raise MailError("neither SMTPFrom nor SMTPAccount is set")
    data = _message_bytes(subject, recipients, body, (_clean(settings["SystemName"], 40) or "One API", address), html)
    context = tls_context()
    if port == 465:
        smtp = smtplib.SMTP_SSL(server, port, timeout=SMTP_TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(server, port, timeout=SMTP_TIMEOUT)
    try:
        smtp.ehlo()
        encrypted = port == 465
        if not encrypted and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            encrypted = True
        if account and token:
            if not encrypted and not _local(server):
                raise MailError("the SMTP server offers no TLS: the password is not sent in clear text")
            smtp.login(account, token)
        smtp.sendmail(address, list(recipients), data)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
