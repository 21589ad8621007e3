"""Every error Shoal raises on purpose.

The tree::

    ShoalError                      root: the CLI turns any of these into one line and an exit code
    ├── ConfigError                 a bad option, setting or argument given by the user
    ├── BencodeError                bytes that are not valid (or too large / too deep) bencode
    ├── MetainfoError               a .torrent that is not a valid torrent
    │   └── UnsafePathError         a file path in a torrent that could escape the download folder
    ├── MagnetError                 a magnet URI that cannot be used
    ├── ProtocolError
    │   ├── LocalProtocolError      we used an API wrongly (a bug on our side)
    │   └── RemoteProtocolError     the other side sent garbage
    │       ├── PeerProtocolError   a peer broke the wire protocol: carries DisconnectReason and ban
    │       ├── TrackerError        a tracker failed or answered garbage: carries the failure reason
    │       └── KrpcError           a DHT message was bad: carries the KRPC error code (201-204)
    ├── StorageError                disk I/O failed
    │   └── DiskFullError           no space left on the device
    ├── ResumeError                 resume data is unreadable or does not match the files
    └── NetworkError                a socket could not be opened, connected or bound

Messages are one line, lower-case, and name the offending value and the limit, e.g.
``message length 17000000 exceeds max_message_size 16777216``.
"""

from __future__ import annotations

import enum


class ShoalError(Exception):
    """Root of every error Shoal raises on purpose."""

    exit_code: int = 1


class ConfigError(ShoalError):
    """A bad option, setting or argument."""

    exit_code = 2


class BencodeError(ShoalError):
    """Bytes that are not valid bencode, or exceed a size or depth limit."""

    exit_code = 3


class MetainfoError(ShoalError):
    """A .torrent file (or info dictionary) that is not a valid torrent."""

    exit_code = 3


class UnsafePathError(MetainfoError):
    """A path from a torrent that is absolute, climbs out of the folder, or is otherwise unsafe."""


class MagnetError(ShoalError):
    """A magnet URI that cannot be parsed or used."""

    exit_code = 3


class ProtocolError(ShoalError):
    """A protocol was not followed."""


class LocalProtocolError(ProtocolError):
    """We used a protocol object wrongly (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The other side sent something that breaks the protocol."""


class DisconnectReason(enum.Enum):
    """Why we dropped a peer; recorded in logs and alerts."""

    PROTOCOL_VIOLATION = "protocol violation"
    MESSAGE_TOO_LARGE = "message too large"
    BAD_HANDSHAKE = "bad handshake"
    WRONG_INFO_HASH = "wrong info-hash"
    SELF_CONNECTION = "connected to ourselves"
    DUPLICATE_CONNECTION = "duplicate connection"
    BAD_BITFIELD = "bad bitfield"
    INVALID_REQUEST = "invalid request"
    UNSOLICITED_PIECE = "unsolicited piece"
    TOO_MANY_REQUESTS = "too many requests"
    CORRUPT_DATA = "sent corrupt data"
    BANNED = "banned"
    TIMEOUT = "timed out"
    INACTIVE = "inactive"
    BOTH_SEEDING = "both sides are seeds"
    TOO_MANY_PEERS = "too many peers"
    CLOSED_BY_PEER = "closed by peer"
    SHUTDOWN = "shutting down"
    UNKNOWN = "unknown"


class PeerProtocolError(RemoteProtocolError):
    """A peer broke the wire protocol; says how to react."""

    def __init__(
        self, message: str, reason: DisconnectReason = DisconnectReason.PROTOCOL_VIOLATION, ban: bool = False
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.ban = ban


class TrackerError(RemoteProtocolError):
    """A tracker failed, timed out, or answered garbage; ``failure_reason`` is the tracker's own text if any."""

    def __init__(self, message: str, failure_reason: str | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason
        self.retryable = retryable


class KrpcError(RemoteProtocolError):
    """A bad DHT message. ``code`` is the BEP 5 error code to answer with."""

    GENERIC = 201
    SERVER = 202
    PROTOCOL = 203
    METHOD_UNKNOWN = 204

    def __init__(self, message: str, code: int = 203) -> None:
        super().__init__(message)
        self.code = code


class StorageError(ShoalError):
    """Disk I/O failed."""

    exit_code = 4


class DiskFullError(StorageError):
    """No space left on the device."""


class ResumeError(ShoalError):
    """Resume data is unreadable or does not describe the files on disk."""

    exit_code = 4


class NetworkError(ShoalError):
    """A socket could not be opened, bound or connected."""

    exit_code = 5
