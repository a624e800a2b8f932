import OverOpt
import OverOptEngine
import OverOptHDF5
import ArgumentParser
print(OverOptVersion.string, RNG(seed: 1).next(), HDF5Placeholder.version())
