"""Writes ROWS random examples (the test's seed) with uc.data.write_hdf5 into FOLDER, in files of
PER_FILE rows (so file ends fall inside batches), plus each row's number as the top "index"; prints
the list file's path."""

import sys

import numpy as np

import unicc.caffe as uc
from nets import dataset

seed, folder, rows, per_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x, y = dataset(seed, rows)
print(uc.data.write_hdf5(folder, per_file, data=x, label=y, index=np.arange(rows)))
