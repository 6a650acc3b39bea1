"""A test client on one HTTP/1.1 connection that fails when an answer closes it."""

import http.client

JSON = {"Content-Type": "application/json"}


class KeepAlive:
    """One HTTP/1.1 connection; every answer must leave it open."""

    def __init__(self, base: str):
        self.connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        self.connection.connect()
        self.socket = self.connection.sock

    def send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        content = response.read()
        assert response.getheader("connection") != "close" and self.connection.sock is self.socket, (path, content[:200])
        return response.status, dict(response.getheaders()), content

    def post_json(self, path: str, text: str | bytes, headers: dict | None = None):
        return self.send("POST", path, text.encode() if isinstance(text, str) else text, JSON if headers is None else headers)
