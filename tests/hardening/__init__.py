"""Hostile input against the proxy: h2spec, HTTP/2 floods, HTTP/1.1 smuggling, slowloris,
and shutdown without loss. Each test runs real processes."""
