#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd), storing what it receives.

    python3 tests/support/smtp_sink.py PORT DIR [--tls|--starttls CERT KEY]

Each accepted message is written to DIR as NNNNNN.eml (the data exactly as
received) with NNNNNN.json beside it ({"mail_from", "rcpt_tos"}), the JSON
last so a reader that sees it finds the .eml complete. Recipients whose
local part starts with "reject" are refused with 550 (a permanent failure);
"defer" with 451 (temporary). Prints "ready" once listening.

With --tls the port speaks TLS from the first byte; with --starttls it
offers STARTTLS and refuses mail before it. Either way CERT and KEY (PEM)
are the server's certificate and key, and AUTH PLAIN/LOGIN is offered and
accepts any password: each attempt's user name is appended to DIR/auth.log,
so a test can tell whether a client sent its credentials at all.
"""
import asyncio
import json
import logging
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = len([n for n in os.listdir(directory) if n.endswith(".json")])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("defer"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%06d" % self.count)
        data = envelope.original_content or envelope.content
        with open(base + ".eml", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def recording_authenticator(directory):
    def authenticate(server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"") or b""
        with open(os.path.join(directory, "auth.log"), "ab") as f:
            f.write(mechanism.encode() + b" " + login + b"\n")
        return AuthResult(success=True)

    return authenticate


def main():
    # aiosmtpd logs a warning about its own use of a deprecated attribute
    # after each AUTH; it is noise on the tests' stderr.
    logging.getLogger("mail.log").addFilter(
        lambda record: "login_data is deprecated" not in record.getMessage()
    )
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    kwargs = {}
    if len(sys.argv) == 6 and sys.argv[3] in ("--tls", "--starttls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
        kwargs["authenticator"] = recording_authenticator(directory)
        if sys.argv[3] == "--tls":
            kwargs["ssl_context"] = context
            # The whole connection is TLS; aiosmtpd only tracks STARTTLS.
            kwargs["auth_require_tls"] = False
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
    elif len(sys.argv) != 3:
        sys.exit(__doc__)
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
