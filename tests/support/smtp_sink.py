#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd), storing what it receives.

    python3 tests/support/smtp_sink.py PORT DIR

Each accepted message is written to DIR as NNNNNN.eml (the data exactly as
received) with NNNNNN.json beside it ({"mail_from", "rcpt_tos"}), the JSON
last so a reader that sees it finds the .eml complete. Recipients whose
local part starts with "reject" are refused with 550 (a permanent failure);
"defer" with 451 (temporary). Prints "ready" once listening.
"""
import asyncio
import json
import os
import sys

from aiosmtpd.controller import Controller


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


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
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
