"""The embedded default's broker: kombu's filesystem transport, each message written atomically.

kombu's ``Channel._put`` creates the message file, then locks and writes it. A worker
that lists the folder in between moves the still-empty file away, fails to decode it
(``JSONDecodeError``) and stops with "Unrecoverable error": seen once in a loaded run
of the suite. Here a message is written under a name no consumer picks up (a leading
dot: ``_get`` matches ``<stamp>_<uuid>.<queue>.msg`` only) and renamed into place,
which is atomic within one folder, so a consumer sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def filesystem_transport_install() -> None:
    """``filesystem://`` URLs use :class:`Transport` (kombu's alias table; a broker
    setting would apply to every URL, this only to the filesystem scheme)."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["filesystem"] = "riskapp.broker:Transport"
