"""GET /api/hello?name=Ada: a greeting, from a plain `BaseHTTPRequestHandler`, as Vercel runs it."""

import json
import os
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        name = parse_qs(urlparse(self.path).query).get("name", ["world"])[0]
        body = json.dumps({"greeting": f"hello, {name}", "env": os.environ.get("VERCEL_ENV")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
