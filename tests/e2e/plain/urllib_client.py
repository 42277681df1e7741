"""GET URL with urllib.request, then again with http.client; print both."""

import http.client
import sys
import urllib.parse
import urllib.request

url = sys.argv[1]
with urllib.request.urlopen(url, timeout=30) as response:
    print(f"urllib: {response.status} {response.read().decode().strip()}", flush=True)
parts = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
conn.request("GET", parts.path + "?client=http.client")
answer = conn.getresponse()
print(f"http.client: {answer.status} {answer.read().decode().strip()}", flush=True)
conn.close()
