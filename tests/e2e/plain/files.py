"""Write, read, list, stat and remove files in the directory DIR; try to
leave it; print what happened."""

import os
import sys

base = sys.argv[1]
path = os.path.join(base, "note.txt")
with open(path, "w") as out:
    out.write("written by the guest\n")
with open(path) as back:
    print(f"read: {back.read().strip()}", flush=True)
os.mkdir(os.path.join(base, "sub"))
print(f"listing: {sorted(os.listdir(base))}", flush=True)
print(f"size: {os.stat(path).st_size}", flush=True)
for escape in (os.path.join(base, "..", "outside.txt"), os.path.join(base, "link", "x")):
    try:
        with open(escape, "w") as out:
            out.write("escaped")
        print(f"ESCAPED to {escape}", flush=True)
    except OSError as error:
        print(f"refused {escape}: {type(error).__name__}", flush=True)
os.remove(path)
os.rmdir(os.path.join(base, "sub"))
print(f"after: {sorted(os.listdir(base))}", flush=True)
