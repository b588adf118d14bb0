"""Binary content from a Lambda handler: a PNG, base64-encoded with isBase64Encoded, as API Gateway expects."""

import base64
import hashlib
import struct
import zlib


def _png(width, height, rgb):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    pixels = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def avatar(event, context):
    """GET /avatars/{name}: a 16x16 square in a colour derived from the name."""
    name = event["pathParameters"]["name"]
    rgb = hashlib.sha256(name.encode()).digest()[:3]
    return {
        "statusCode": 200,
        "headers": {"content-type": "image/png", "cache-control": "max-age=3600"},
        "body": base64.b64encode(_png(16, 16, rgb)).decode(),
        "isBase64Encoded": True,
    }
