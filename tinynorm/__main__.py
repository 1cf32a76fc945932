"""``python -m tinynorm``: the ``tinynorm`` command.

Under MPI run ``mpiexec -n N python -m mpi4py -m tinynorm train --backend mpi``: a rank
that fails exits with a non-zero status, and ``-m mpi4py`` turns that into an abort of
the whole job instead of leaving the other ranks blocked in a collective.
"""
import sys

from .cli import main

sys.exit(main())
