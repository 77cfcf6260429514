"""Prints 'identical' when two .npz files hold the same arrays byte for
byte (same names, dtypes, shapes and bits), else the names that differ."""
import sys

import numpy as np

a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
if sorted(a.files) != sorted(b.files) or not a.files:
    print("DIFFERENT NAMES", sorted(a.files), sorted(b.files))
    sys.exit(0)
bad = [k for k in a.files
       if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
       or a[k].tobytes() != b[k].tobytes()]
print("identical" if not bad else "DIFFER %s" % bad, len(a.files))
