import os

import numpy as np
import pytest

from fast_rcnn.config import (ConfigError, cfg, cfg_from_file, cfg_from_list, cfg_to_string,
                              get_output_dir)

pytestmark = pytest.mark.usefixtures('fresh_cfg')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def snapshot():
    return cfg_to_string()


def write(tmp_path, text, name='exp.yml'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_release_defaults():
    expected_train = dict(
        SCALES=(600,), MAX_SIZE=1000, IMS_PER_BATCH=2, BATCH_SIZE=128, FG_FRACTION=0.25,
        FG_THRESH=0.5, BG_THRESH_HI=0.5, BG_THRESH_LO=0.1, USE_FLIPPED=True, BBOX_REG=True,
        BBOX_THRESH=0.5, SNAPSHOT_ITERS=10000, SNAPSHOT_INFIX='', USE_PREFETCH=False,
        BBOX_NORMALIZE_TARGETS=True, BBOX_INSIDE_WEIGHTS=(1, 1, 1, 1),
        BBOX_NORMALIZE_TARGETS_PRECOMPUTED=False, BBOX_NORMALIZE_MEANS=(0, 0, 0, 0),
        BBOX_NORMALIZE_STDS=(0.1, 0.1, 0.2, 0.2), PROPOSAL_METHOD='selective_search',
        ASPECT_GROUPING=True, HAS_RPN=False, RPN_POSITIVE_OVERLAP=0.7,
        RPN_NEGATIVE_OVERLAP=0.3, RPN_CLOBBER_POSITIVES=False, RPN_FG_FRACTION=0.5,
        RPN_BATCHSIZE=256, RPN_NMS_THRESH=0.7, RPN_PRE_NMS_TOP_N=12000,
        RPN_POST_NMS_TOP_N=2000, RPN_MIN_SIZE=16, RPN_BBOX_INSIDE_WEIGHTS=(1, 1, 1, 1),
        RPN_POSITIVE_WEIGHT=-1.0, RPN_LAMBDA=10.0, ITER_SIZE=0,
        RANKS_PER_UPDATE=0,
        # Project keys: non-approximate training's tamed coordinate gradient by default
        # (docs/joint_training.md: the exact one wrecks the RPN).
        COORD_GRADIENT=True, COORD_GRADIENT_SCALE=0.1, COORD_GRADIENT_ROIS='fg')
    expected_test = dict(
        SCALES=(600,), MAX_SIZE=1000, NMS=0.3, SVM=False, BBOX_REG=True, HAS_RPN=False,
        PROPOSAL_METHOD='selective_search', RPN_NMS_THRESH=0.7, RPN_PRE_NMS_TOP_N=6000,
        RPN_POST_NMS_TOP_N=300, RPN_MIN_SIZE=16, MAX_PER_IMAGE=100, SCORE_THRESH=0.05,
        RPN_NO_NMS=False, RPN_MODE='rpn')
    assert dict(cfg.TRAIN) == expected_train
    assert dict(cfg.TEST) == expected_test
    assert cfg.DEDUP_BOXES == 1 / 16 and cfg.RNG_SEED == 3 and cfg.EPS == 1e-14
    np.testing.assert_array_equal(cfg.PIXEL_MEANS, [[[102.9801, 115.9465, 122.7717]]])
    assert cfg.ROOT_DIR == REPO_ROOT
    assert cfg.DATA_DIR == os.path.join(REPO_ROOT, 'data')
    assert cfg.MODELS_DIR == os.path.join(REPO_ROOT, 'models')
    assert (cfg.MATLAB, cfg.EXP_DIR, cfg.USE_GPU_NMS, cfg.GPU_ID) == ('matlab', 'default', True, 0)
    assert cfg.ANCHOR_SCALES == (8, 16, 32) and cfg.ANCHOR_RATIOS == (0.5, 1, 2)
    assert cfg.CUDNN_ALLOW_TF32 is False
    assert cfg.TRAIN.SCALES is cfg['TRAIN']['SCALES']  # attribute and item access agree


def test_yaml_merge_is_recursive_and_converts_types(tmp_path):
    cfg_from_file(write(tmp_path, """
EXP_DIR: faster_rcnn_end2end
TRAIN:
  SCALES: [400, 500]
  FG_FRACTION: 1          # int where a float is expected
  HAS_RPN: true
  BBOX_NORMALIZE_STDS: [0.2, 0.2, 0.4, 0.4]
TEST:
  NMS: 0
EPS: 1e-6                 # YAML 1.1 reads this as text
PIXEL_MEANS: [[[1, 2, 3]]]
"""))
    assert cfg.EXP_DIR == 'faster_rcnn_end2end'
    assert cfg.TRAIN.SCALES == (400, 500) and isinstance(cfg.TRAIN.SCALES, tuple)
    assert cfg.TRAIN.FG_FRACTION == 1.0 and type(cfg.TRAIN.FG_FRACTION) is float
    assert cfg.TRAIN.HAS_RPN is True
    assert cfg.TRAIN.BBOX_NORMALIZE_STDS == (0.2, 0.2, 0.4, 0.4)
    assert type(cfg.TEST.NMS) is float and cfg.TEST.NMS == 0
    assert cfg.EPS == 1e-6
    assert cfg.PIXEL_MEANS.shape == (1, 1, 3) and cfg.PIXEL_MEANS.dtype == np.float64
    np.testing.assert_array_equal(cfg.PIXEL_MEANS, [[[1, 2, 3]]])
    # Keys the file does not name keep their defaults.
    assert cfg.TRAIN.BATCH_SIZE == 128 and cfg.TEST.SCALES == (600,)
    assert cfg.TRAIN['SCALES'] == (400, 500)


def test_pixel_means_accepts_flat_list_but_not_wrong_size(tmp_path):
    cfg_from_file(write(tmp_path, 'PIXEL_MEANS: [4, 5, 6]\n'))
    assert cfg.PIXEL_MEANS.shape == (1, 1, 3)
    np.testing.assert_array_equal(cfg.PIXEL_MEANS.ravel(), [4, 5, 6])
    with pytest.raises(ConfigError, match='PIXEL_MEANS'):
        cfg_from_file(write(tmp_path, 'PIXEL_MEANS: [4, 5]\n'))
    with pytest.raises(ConfigError, match='PIXEL_MEANS'):
        cfg_from_file(write(tmp_path, 'PIXEL_MEANS: [a, b, c]\n'))


def test_unknown_key_in_file_names_key_and_file_and_changes_nothing(tmp_path):
    before = snapshot()
    path = write(tmp_path, 'EXP_DIR: changed\nTRAIN:\n  SCALESS: [500]\n')
    with pytest.raises(ConfigError) as info:
        cfg_from_file(path)
    assert 'TRAIN.SCALESS' in str(info.value) and path in str(info.value)
    assert isinstance(info.value, ValueError)
    assert snapshot() == before


@pytest.mark.parametrize('text, key, expected, shown', [
    ('TRAIN:\n  USE_FLIPPED: maybe\n', 'TRAIN.USE_FLIPPED', 'bool', "'maybe'"),
    ('TRAIN:\n  BATCH_SIZE: 12.5\n', 'TRAIN.BATCH_SIZE', 'int', '12.5'),
    ('TRAIN:\n  BATCH_SIZE: true\n', 'TRAIN.BATCH_SIZE', 'int', 'True'),
    ('TRAIN:\n  USE_FLIPPED: 1\n', 'TRAIN.USE_FLIPPED', 'bool', '1'),
    ('TRAIN:\n  FG_FRACTION: lots\n', 'TRAIN.FG_FRACTION', 'float', "'lots'"),
    ('TRAIN:\n  SCALES: 600\n', 'TRAIN.SCALES', 'list', '600'),
    ('TRAIN:\n  SCALES: [600, big]\n', 'TRAIN.SCALES', 'int', "[600, 'big']"),
    ('TRAIN: 5\n', 'TRAIN', 'mapping', '5'),
    ('EXP_DIR: [a, b]\n', 'EXP_DIR', 'str', "['a', 'b']"),
])
def test_wrong_type_names_key_type_and_value(tmp_path, text, key, expected, shown):
    before = snapshot()
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        cfg_from_file(path)
    message = str(info.value)
    assert key in message and expected in message and shown in message and path in message
    assert snapshot() == before


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match='not valid YAML'):
        cfg_from_file(write(tmp_path, 'TRAIN: [unclosed\n'))
    with pytest.raises(ConfigError, match='mapping'):
        cfg_from_file(write(tmp_path, '- a\n- b\n'))
    with pytest.raises(ConfigError, match='cannot read'):
        cfg_from_file(str(tmp_path / 'missing.yml'))
    before = snapshot()
    cfg_from_file(write(tmp_path, '# nothing but a comment\n'))
    assert snapshot() == before


def test_set_list_parsing():
    cfg_from_list(['TRAIN.SCALES', '(500,)', 'TEST.NMS', '0.4', 'TRAIN.USE_FLIPPED', 'False',
                   'TRAIN.HAS_RPN', 'true', 'EXP_DIR', '2007', 'TRAIN.SNAPSHOT_INFIX', "'a b'",
                   'TEST.SCALES', '[300, 400]', 'EPS', '1e-3', 'TEST.RPN_MODE', 'no_cls',
                   'PIXEL_MEANS', '[[[1, 2, 3]]]', 'TRAIN.RPN_LAMBDA', '1'])
    assert cfg.TRAIN.SCALES == (500,)
    assert cfg.TEST.NMS == 0.4
    assert cfg.TRAIN.USE_FLIPPED is False and cfg.TRAIN.HAS_RPN is True
    assert cfg.EXP_DIR == '2007'  # string keys take the text as given
    assert cfg.TRAIN.SNAPSHOT_INFIX == 'a b'
    assert cfg.TEST.SCALES == (300, 400) and isinstance(cfg.TEST.SCALES, tuple)
    assert cfg.EPS == 1e-3 and cfg.TEST.RPN_MODE == 'no_cls'
    np.testing.assert_array_equal(cfg.PIXEL_MEANS, [[[1, 2, 3]]])
    assert cfg.TRAIN.RPN_LAMBDA == 1.0 and type(cfg.TRAIN.RPN_LAMBDA) is float


@pytest.mark.parametrize('key', ['TRAIN.NOPE', 'NOPE', 'EXP_DIR.SUB', 'TRAIN.SCALES.X'])
def test_set_unknown_key(key):
    before = snapshot()
    with pytest.raises(ConfigError, match='unknown config key %s' % key.replace('.', r'\.')):
        cfg_from_list(['EXP_DIR', 'changed', key, '1'])
    assert snapshot() == before


def test_set_wrong_type_changes_nothing():
    before = snapshot()
    with pytest.raises(ConfigError) as info:
        cfg_from_list(['EXP_DIR', 'changed', 'TRAIN.BATCH_SIZE', 'many'])
    assert 'TRAIN.BATCH_SIZE' in str(info.value) and "'many'" in str(info.value)
    assert 'int' in str(info.value) and '--set' in str(info.value)
    assert snapshot() == before


def test_set_odd_list():
    with pytest.raises(ConfigError, match='odd'):
        cfg_from_list(['TRAIN.SCALES', '(500,)', 'EXP_DIR'])


def test_get_output_dir(tmp_path):
    class Named:
        def __init__(self, name):
            self.name = name

    cfg.ROOT_DIR = str(tmp_path)
    cfg.EXP_DIR = 'exp'
    path = get_output_dir(Named('voc_2007_test'), Named('VGG16_faster_rcnn_final'))
    assert path == str(tmp_path / 'output' / 'exp' / 'voc_2007_test' / 'VGG16_faster_rcnn_final')
    assert os.path.isdir(path)
    path = get_output_dir(Named('voc_2007_trainval'))
    assert path == str(tmp_path / 'output' / 'exp' / 'voc_2007_trainval') and os.path.isdir(path)
    assert get_output_dir('voc_2007_trainval') == path  # again: already there is fine


def test_cfg_to_string():
    text = cfg_to_string()
    assert 'TRAIN.SCALES: (600,)' in text.splitlines()
    assert 'PIXEL_MEANS: [[[102.9801, 115.9465, 122.7717]]]' in text.splitlines()
    assert 'EXP_DIR: \'default\'' in text.splitlines()


# Ranges -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('key,text', [
    ('TRAIN.SCALES', '(0,)'), ('TRAIN.SCALES', '()'), ('TRAIN.SCALES', '[600, -1]'),
    ('TRAIN.MAX_SIZE', '0'), ('TRAIN.BATCH_SIZE', '-64'), ('TRAIN.IMS_PER_BATCH', '0'),
    ('RNG_SEED', '-1'), ('RNG_SEED', '4294967296'), ('TRAIN.FG_FRACTION', '2.0'),
    ('TRAIN.FG_THRESH', '-0.1'), ('TRAIN.BG_THRESH_HI', '1.5'), ('TRAIN.BBOX_THRESH', '3'),
    ('TRAIN.SNAPSHOT_ITERS', '-1'), ('TRAIN.BBOX_NORMALIZE_STDS', '[0.1, 0.1, 0, 0.2]'),
    ('TRAIN.BBOX_NORMALIZE_STDS', '[0.1, 0.1]'), ('TRAIN.BBOX_INSIDE_WEIGHTS', '[1, 1, 1, -1]'),
    ('TRAIN.RPN_POSITIVE_OVERLAP', '1.2'), ('TRAIN.RPN_FG_FRACTION', '-0.5'),
    ('TRAIN.RPN_BATCHSIZE', '0'), ('TRAIN.RPN_NMS_THRESH', '7'), ('TRAIN.RPN_PRE_NMS_TOP_N', '-2'),
    ('TRAIN.RPN_MIN_SIZE', '-16'), ('TRAIN.RPN_POSITIVE_WEIGHT', '1.0'),
    ('TRAIN.RPN_LAMBDA', '-1'), ('TRAIN.ITER_SIZE', '-2'), ('TRAIN.RANKS_PER_UPDATE', '-8'),
    ('TEST.SCALES', '(0,)'),
    ('TEST.MAX_SIZE', '-5'), ('TEST.NMS', '1.01'), ('TEST.NMS', 'nan'),
    ('TEST.RPN_POST_NMS_TOP_N', '-7'), ('TEST.MAX_PER_IMAGE', '-3'), ('TEST.SCORE_THRESH', 'inf'),
    ('DEDUP_BOXES', '-0.0625'), ('EPS', '0'), ('GPU_ID', '-1'), ('ANCHOR_SCALES', '()'),
    ('ANCHOR_RATIOS', '[0.5, 0]'), ('ANCHOR_SCALES', '[8, -16]'),
    ('PIXEL_MEANS', '[[[1, 2, .inf]]]'),
])
def test_values_out_of_range_are_refused_naming_the_key(key, text):
    before = snapshot()
    with pytest.raises(ConfigError) as info:
        cfg_from_list(['EXP_DIR', 'changed', key, text])
    assert key in str(info.value) and 'expects' in str(info.value)
    assert snapshot() == before  # nothing changed, not even the valid pair before it


def test_values_out_of_range_in_a_file_name_the_file_and_key(tmp_path):
    path = write(tmp_path, 'TRAIN:\n  SCALES: [0]\n')
    with pytest.raises(ConfigError, match=r'%s: TRAIN\.SCALES expects' % path):
        cfg_from_file(path)


def _numeric_leaves(node, prefix=''):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _numeric_leaves(value, prefix + key + '.')
        elif isinstance(value, np.ndarray) or (
                not isinstance(value, (str, bool)) and isinstance(value, (int, float, tuple))):
            yield prefix + key, value


def test_every_numeric_key_has_a_range_that_its_default_meets():
    from fast_rcnn.config_checks import VALID_VALUES
    leaves = dict(_numeric_leaves(cfg))
    assert len(leaves) >= 40
    assert sorted(leaves) == sorted(VALID_VALUES)
    for key, value in leaves.items():
        assert VALID_VALUES[key][1](value), key


def test_edge_values_are_accepted():
    cfg_from_list(['TRAIN.FG_FRACTION', '1', 'TRAIN.BG_THRESH_LO', '0', 'TEST.NMS', '0',
                   'TRAIN.RPN_PRE_NMS_TOP_N', '-1', 'TEST.MAX_PER_IMAGE', '0',
                   'RNG_SEED', str(2 ** 32 - 1), 'TEST.SCORE_THRESH', '-2.5',
                   'TRAIN.SNAPSHOT_ITERS', '0', 'ANCHOR_RATIOS', '[1]'])
    assert cfg.RNG_SEED == 2 ** 32 - 1 and cfg.TEST.SCORE_THRESH == -2.5


def test_crossed_thresholds_are_refused_once_everything_is_loaded():
    from fast_rcnn.config import check_consistency
    # One file may move both bounds, one at a time: only the final values count.
    cfg_from_list(['TRAIN.BG_THRESH_LO', '0.6'])
    cfg_from_list(['TRAIN.BG_THRESH_HI', '0.7'])
    check_consistency()
    cfg_from_list(['TRAIN.RPN_NEGATIVE_OVERLAP', '0.8'])
    with pytest.raises(ConfigError, match=r'TRAIN\.RPN_NEGATIVE_OVERLAP .*TRAIN\.RPN_POSITIVE'):
        check_consistency()


def test_a_yaml_error_is_one_line_with_file_line_and_column(tmp_path):
    path = write(tmp_path, 'TRAIN:\n  SCALES: [600\n  MAX_SIZE: 1000\n')
    with pytest.raises(ConfigError) as info:
        cfg_from_file(path)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith('config file %s:3:11: not valid YAML: ' % path)
    assert message.count(path) == 1


def test_the_keys_a_run_sets_are_remembered(tmp_path):
    from fast_rcnn.config import keys_set, merged_config
    assert keys_set() == frozenset()
    cfg_from_file(write(tmp_path, 'TRAIN:\n  SCALES: [600]\nEXP_DIR: x\n'))
    cfg_from_list(['TEST.NMS', '0.3'])  # set, although to its default
    assert keys_set() == {'TRAIN.SCALES', 'EXP_DIR', 'TEST.NMS'}
    config, keys = merged_config({'TRAIN': {'HAS_RPN': True}}, 'a step')
    assert keys == {'TRAIN.SCALES', 'EXP_DIR', 'TEST.NMS', 'TRAIN.HAS_RPN'}
    assert config.TRAIN.HAS_RPN is True and cfg.TRAIN.HAS_RPN is False  # cfg left as it was
    with pytest.raises(ConfigError, match='a step: unknown config key TRAIN.HAS_RNP'):
        merged_config({'TRAIN': {'HAS_RNP': True}}, 'a step')
    with pytest.raises(ConfigError):
        cfg_from_list(['TEST.RPN_NMS_THRESH', '2'])
    assert 'TEST.RPN_NMS_THRESH' not in keys_set()  # a refused override sets nothing


def test_renamed_keys_say_their_new_name():
    with pytest.raises(ConfigError, match='unknown config key RPN_ANCHOR_SCALES '
                                          r'\(it is ANCHOR_SCALES now\)'):
        cfg_from_list(['RPN_ANCHOR_SCALES', '[8]'])
