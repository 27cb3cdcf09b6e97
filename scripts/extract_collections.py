"""Extract named collections (namespace/name) from the `ansible` wheel into a collections path.

Galaxy is not reachable from CI; the `ansible` PyPI package ships the collections we need.
"""
import glob
import os
import shutil
import sys
import zipfile


def main(wheel_dir, collections_root, names):
    wheels = sorted(glob.glob(os.path.join(wheel_dir, "ansible-[0-9]*.whl")))
    if not wheels:
        sys.exit("no ansible wheel in %s" % wheel_dir)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in names:
            prefix = "ansible_collections/%s/" % name
            members = [m for m in wheel.namelist() if m.startswith(prefix)]
            if not members:
                sys.exit("%s is not in %s" % (name, wheels[-1]))
            target = os.path.join(collections_root, "ansible_collections", name)
            shutil.rmtree(target, ignore_errors=True)
            wheel.extractall(collections_root, members)
            print("collections: %s from %s" % (name.replace("/", "."), os.path.basename(wheels[-1])))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
