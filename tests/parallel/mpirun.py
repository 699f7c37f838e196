"""Starting MPI jobs from the tests: mpiexec from the Python environment (pip's mpich), one
process per rank oversubscribing the cores, traffic on the loopback interface only, bounded in
time. `python -m mpi4py` makes one failing rank end the whole job."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mpiexec():
    """mpiexec beside the Python interpreter (pip install mpich), else on PATH; skips the test
    where mpi4py or mpiexec is missing (requirements.txt installs both)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip('mpi4py is not installed (pip install -r requirements.txt)')
    from caffe import parallel
    found = parallel.mpiexec_path()
    if not found:
        pytest.skip('mpiexec not found (pip install mpich)')
    return found


def loopback_env(**extra):
    env = dict(os.environ, UCX_NET_DEVICES='lo', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'lib'),
                                           os.environ.get('PYTHONPATH', '')]))
    env.update(extra)
    return env


def run_mpi(ranks, args, timeout=240, cwd=ROOT, env=None):
    """Runs `mpiexec -n ranks python -m mpi4py args...`; returns the CompletedProcess (stdout and
    stderr as text)."""
    cmd = [mpiexec(), '-iface', 'lo', '-n', str(ranks), sys.executable, '-m', 'mpi4py'] + \
        [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, env=env or loopback_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)
