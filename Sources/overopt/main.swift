import OverOpt
import OverOptEngine
import OverOptHDF5
import ArgumentParser
print(OverOptVersion.string, RNG.stableHash("x"), HDF5Placeholder.version())
