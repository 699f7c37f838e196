"""fast_rcnn.experiment, the tools' edge: cfg read once into one immutable value, and written into
the param_str of the prototxt copies a run uses, where a setting the prototxt holds already
stays unless the run sets it."""
import dataclasses
import os

import numpy as np
import pytest

import caffe
from core.anchor_targets import AnchorLabelling
from core.proposals import TEST_PROPOSALS, TRAIN_PROPOSALS
from core.roi_targets import BoxTargets
from fast_rcnn import net_surgery, test_settings
from fast_rcnn.config import cfg, cfg_from_list
from fast_rcnn.experiment import Experiment
from fast_rcnn.solver_wrapper import TrainSettings
from fast_rcnn.test_settings import TestSettings
from roi_data_layer.minibatch import MinibatchSettings
from utils.param_str import load_param_str

pytestmark = pytest.mark.usefixtures('fresh_cfg')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end')
CFGS = [os.path.join(ROOT, 'experiments', 'cfgs', n) for n in ('faster_rcnn_end2end.yml',
                                                               'toy.yml')]


def params(path):
    """{layer name: param_str mapping} of a prototxt's Python layers."""
    return {l.name: load_param_str(l.python_param.param_str)
            for l in net_surgery.read_net(path).layer if l.HasField('python_param')}


def test_the_config_defaults_are_the_settings_defaults():
    # A net whose param_str names no setting behaves as one with cfg's defaults written in.
    e = Experiment.from_cfg()
    assert e.train_proposals == TRAIN_PROPOSALS and e.test_proposals == TEST_PROPOSALS
    assert e.anchor_labelling == AnchorLabelling()
    assert e.minibatch == MinibatchSettings()
    assert e.train == TrainSettings() and e.train.box_targets == BoxTargets()
    assert e.test == TestSettings()
    assert (e.anchor_scales, e.anchor_ratios) == ((8, 16, 32), (0.5, 1.0, 2.0))
    assert e.keys_set == frozenset()


def test_the_experiment_is_read_once_and_immutable():
    cfg_from_list(['TRAIN.BATCH_SIZE', '32', 'TEST.SCALES', '(240,)'])
    e = Experiment.from_cfg()
    cfg.TRAIN.BATCH_SIZE = 64  # a later change of cfg does not reach the value
    assert e.roi_sampling.batch_size == 32 and e.test.scales == (240,)
    assert e.keys_set == {'TRAIN.BATCH_SIZE', 'TEST.SCALES'}
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.rng_seed = 5
    import pickle
    assert pickle.loads(pickle.dumps(e)) == e  # it crosses into the alt-opt steps' processes


def test_a_step_experiment_leaves_cfg_as_it_is():
    e = Experiment.from_cfg_with({'TRAIN': {'HAS_RPN': True, 'SNAPSHOT_INFIX': 'stage1'}},
                                 'a step')
    assert e.minibatch.has_rpn and e.train.snapshot_infix == 'stage1'
    assert {'TRAIN.HAS_RPN', 'TRAIN.SNAPSHOT_INFIX'} <= e.keys_set
    assert cfg.TRAIN.HAS_RPN is False and cfg.TRAIN.SNAPSHOT_INFIX == ''


def test_a_train_copy_holds_every_setting_of_the_layers(tmp_path):
    e = Experiment.from_files(CFGS, {'TRAIN': {'BATCH_SIZE': 32, 'RPN_POSITIVE_OVERLAP': 0.6}})
    solver = e.solver_file(os.path.join(TOY, 'solver.prototxt'), 4, str(tmp_path))
    from caffe import io
    from caffe.proto import caffe_pb2
    train_net = io.read_prototxt(solver, caffe_pb2.SolverParameter()).train_net
    assert os.path.dirname(train_net) == str(tmp_path)
    net = caffe.Net(train_net, caffe.TRAIN)
    layers = net.layer_dict
    # What each layer uses is the experiment's: nothing comes from cfg any more.
    assert layers['input-data'].settings == e.minibatch
    assert layers['input-data'].settings.sampling.batch_size == 32
    assert layers['rpn-data']._rule == e.anchor_labelling
    assert layers['rpn-data']._rule.positive_iou == 0.6
    assert layers['proposal']._settings == e.train_proposals
    assert layers['proposal']._settings.post_nms_top_n == 300  # toy.yml's TRAIN value
    assert layers['roi-data']._sampling == e.roi_sampling
    assert layers['roi-data'].box_targets.precomputed is True
    # The net's own anchors (its param_str: scales [2, 4, 8]), as none was set.
    np.testing.assert_array_equal(layers['proposal']._anchors,
                                  layers['rpn-data']._anchors)
    assert params(train_net)['proposal']['scales'] == [2, 4, 8]


def test_settings_the_prototxt_holds_stay_unless_the_run_sets_them(tmp_path):
    # A test net whose layers hold their own settings (a run's saved copy).
    saved = Experiment.from_files(CFGS, {'TEST': {'RPN_POST_NMS_TOP_N': 50, 'NMS': 0.4}})
    copy = saved.net_file(os.path.join(TOY, 'test.prototxt'), 4, str(tmp_path / 'a'),
                          caffe.TEST)
    assert params(copy)['proposal']['post_nms_top_n'] == 50
    assert params(copy)[test_settings.LAYER_NAME]['scales'] == [240]
    # With no config the copy is complete already: used as it is.
    plain = Experiment.from_cfg()
    assert plain.net_file(copy, 4, str(tmp_path / 'b'), caffe.TEST) == copy
    # A run that sets a key changes that setting only.
    cfg_from_list(['TEST.RPN_POST_NMS_TOP_N', '300'])  # the default's value, but set
    again = Experiment.from_cfg().net_file(copy, 4, str(tmp_path / 'b'), caffe.TEST)
    assert again != copy and os.path.basename(again) == 'test_run_run.prototxt'
    p = params(again)
    assert p['proposal']['post_nms_top_n'] == 300 and p['proposal']['pre_nms_top_n'] == 1000
    assert p[test_settings.LAYER_NAME]['nms'] == 0.4
    net = caffe.Net(again, caffe.TEST)
    assert test_settings.of_net(net) == TestSettings(scales=(240,), max_size=400, nms=0.4,
                                                     has_rpn=True)


def test_anchors_set_by_the_run_rewrite_the_rpn(tmp_path):
    e = Experiment.from_files([], {'ANCHOR_SCALES': [4, 8], 'ANCHOR_RATIOS': [1.0]})
    copy = e.net_file(os.path.join(TOY, 'test.prototxt'), 4, str(tmp_path), caffe.TEST)
    assert os.path.basename(copy) == 'test_anchors_s4-8_r1.prototxt'
    layers = {l.name: l for l in net_surgery.read_net(copy).layer}
    assert layers['rpn_cls_score'].convolution_param.num_output == 2 * 2
    p = load_param_str(layers['proposal'].python_param.param_str)
    assert (p['scales'], p['ratios']) == ([4, 8], [1.0])
    # Ratios alone: the net's own scales (the toy's [2, 4, 8]) with them.
    e = Experiment.from_files([], {'ANCHOR_RATIOS': [1.0]})
    copy = e.net_file(os.path.join(TOY, 'test.prototxt'), 4, str(tmp_path), caffe.TEST)
    assert os.path.basename(copy) == 'test_anchors_sdef_r1.prototxt'
    layers = {l.name: l for l in net_surgery.read_net(copy).layer}
    assert layers['rpn_bbox_pred'].convolution_param.num_output == 4 * 3
    p = load_param_str(layers['proposal'].python_param.param_str)
    assert (p['scales'], p['ratios']) == ([2, 4, 8], [1.0])


def test_test_experiment_proposes_with_the_net_unless_the_run_says_otherwise(tmp_path):
    from datasets.toy import generate_toy_dataset
    from fast_rcnn.experiment import test_experiment
    data = tmp_path / 'data'
    generate_toy_dataset(str(data / 'toy'), num_train=1, num_test=2)
    caffe.set_random_seed(1)
    weights = str(tmp_path / 'toy.caffemodel')
    caffe.Net(os.path.join(TOY, 'test.prototxt'), caffe.TEST).save(weights)
    places = {'DATA_DIR': str(data), 'ROOT_DIR': str(tmp_path)}
    # TEST.HAS_RPN is False by default, yet the net has a proposal layer: it proposes.
    testing = test_experiment(Experiment.from_files([], places),
                              os.path.join(TOY, 'test.prototxt'), weights, 'toy_test')
    assert testing.settings.has_rpn and 'im_info' in testing.net.inputs
    assert testing.prototxt.endswith(os.path.join('toy_test', 'toy', 'test_run.prototxt'))
    # Set to False by the run: the detector alone, on given boxes.
    testing = test_experiment(
        Experiment.from_files([], dict(places, TEST={'HAS_RPN': False,
                                                     'PROPOSAL_METHOD': 'gt'})),
        os.path.join(TOY, 'test.prototxt'), weights, 'toy_test')
    assert not testing.settings.has_rpn and 'rois' in testing.net.inputs
    assert testing.settings.proposal_method == 'gt'
