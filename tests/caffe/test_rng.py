"""caffe.rng: the data layers' draws are boost::mt19937's, taken as Caffe takes them. Checked
against the C++ standard's check value for mt19937 and, where boost's headers and a C++ compiler
are installed, against boost itself (a small program using boost::mt19937 and
boost::uniform_int the way caffe::shuffle does)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import caffe
from caffe.rng import CaffeRNG, caffe_rng_rand


def test_mt19937_check_value_of_the_cpp_standard():
    # [rand.predef]: the 10000th consecutive output of a default-constructed mt19937 (seed
    # 5489) is 4123659995.
    rng = CaffeRNG(5489)
    for _ in range(9999):
        rng.raw()
    assert rng.raw() == 4123659995


def test_runtime_stream_draws_are_the_seeded_generators_outputs():
    caffe.set_random_seed(5489)
    assert caffe_rng_rand() == CaffeRNG(5489).raw()


def test_rand_is_the_draw_modulo_n():
    a, b = CaffeRNG(7), CaffeRNG(7)
    for n in (1, 2, 3, 10, 1000, 2 ** 31 + 5):
        assert a.rand(n) == b.raw() % n


def test_uniform_int_is_uniform_and_in_range():
    rng = CaffeRNG(11)
    values = [rng.uniform_int(0, 4) for _ in range(20000)]
    counts = np.bincount(values, minlength=5)
    assert counts.sum() == 20000 and len(counts) == 5
    # each of 5 values with p = 0.2: 4000 +- 4.5 sigma (sigma ~ 57)
    assert np.all(np.abs(counts - 4000) < 260), counts
    assert CaffeRNG(3).uniform_int(5, 5) == 5


def test_shuffle_is_a_permutation_and_repeats_with_the_seed():
    a, b = list(range(50)), list(range(50))
    CaffeRNG(99).shuffle(a)
    CaffeRNG(99).shuffle(b)
    assert a == b and sorted(a) == list(range(50)) and a != list(range(50))


BOOST_PROGRAM = r'''
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/uniform_int.hpp>
#include <cstdio>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  unsigned seed = std::strtoul(argv[1], 0, 10);
  int n = std::atoi(argv[2]);
  boost::mt19937 raw(seed);
  for (int i = 0; i < 5; ++i) std::printf("%u ", (unsigned) raw());
  std::printf("\n");
  boost::mt19937 gen(seed);
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  for (long i = n - 1; i > 0; --i) {   // Fisher-Yates from the end, as caffe::shuffle
    boost::uniform_int<long> dist(0, i);
    long j = dist(gen);
    int t = v[i]; v[i] = v[j]; v[j] = t;
  }
  for (int i = 0; i < n; ++i) std::printf("%d ", v[i]);
  std::printf("\n");
  boost::mt19937 wide(seed);
  for (int i = 0; i < 6; ++i) {
    boost::uniform_int<long> d(0, 3000000000L);
    std::printf("%ld ", d(wide));
  }
  std::printf("\n");
}
'''


def _boost_program(tmp_path):
    compiler = shutil.which('g++') or shutil.which('c++')
    if compiler is None or not os.path.isfile('/usr/include/boost/random/mersenne_twister.hpp'):
        pytest.skip('needs a C++ compiler and boost headers (apt-get install libboost-dev)')
    source = tmp_path / 'check.cpp'
    source.write_text(BOOST_PROGRAM)
    binary = tmp_path / 'check'
    subprocess.run([compiler, '-O1', '-o', str(binary), str(source)], check=True)
    return binary


@pytest.mark.parametrize('seed,n', [(1701, 20), (0, 7), (4294967295, 33)])
def test_against_boost(tmp_path, seed, n):
    binary = _boost_program(tmp_path)
    out = subprocess.run([str(binary), str(seed), str(n)], check=True, capture_output=True,
                         text=True).stdout.split('\n')
    raw = CaffeRNG(seed)
    assert [raw.raw() for _ in range(5)] == [int(x) for x in out[0].split()]
    items = list(range(n))
    CaffeRNG(seed).shuffle(items)
    assert items == [int(x) for x in out[1].split()]
    wide = CaffeRNG(seed)
    assert [wide.uniform_int(0, 3000000000) for _ in range(6)] == [int(x) for x in out[2].split()]
