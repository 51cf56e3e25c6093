"""Writes ROWS random examples (the test's seed) as Caffe Datums into an LMDB, the input of a Data layer."""

import sys

import lmdb
from caffe.io import array_to_datum

from nets import dataset

seed, path, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
x, y = dataset(seed, rows)
with lmdb.open(path, map_size=1 << 28).begin(write=True) as txn:
    for i in range(rows):
        txn.put(b"%08d" % i, array_to_datum(x[i].astype(float), int(y[i])).SerializeToString())
