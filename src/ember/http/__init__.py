"""The wire: HTTP/1.1 parsing, response serialisation and the connection protocol."""
