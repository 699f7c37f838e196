"""One experiment's settings, read from cfg once, at a tool's start, into an immutable value that
the tool passes down: to training and testing, to the alternating training's step processes, and
into the prototxt copies it runs.

    experiment = Experiment.from_cfg()              # after the tool has loaded its config
    training = train_experiment(experiment, solver, 'voc_2007_trainval', weights)
    result = training.run(max_iters)
    tested = test_experiment(experiment, test_prototxt, result.final_model, 'voc_2007_test')

What a net's Python layers use (anchors, proposal limits and NMS, RoI sampling, box-target
normalization, minibatch scales; for a test net, the test settings) goes into the param_str of
the copy of its prototxt that the run uses (layer_settings; fast_rcnn.net_surgery writes it), so
that copy, saved beside the run's outputs, describes the net completely: tools/test_net.py and
tools/demo.py reproduce the run's detections from it and the weights with no --cfg. A setting the
prototxt already holds stays unless the run sets its cfg key (a config file, the tool's defaults
or --set: fast_rcnn.config.keys_set).

This module and fast_rcnn.config are the only library modules that read cfg.
"""
import os
from dataclasses import dataclass

import numpy as np

import caffe
from core.anchor_targets import AnchorLabelling
from core.proposals import ProposalSettings
from fast_rcnn import test_settings
from fast_rcnn.config import (cfg, keys_set as config_keys_set, merged_config,
                              read_config_file)
from fast_rcnn.solver_wrapper import SolverWrapper, TrainSettings
from fast_rcnn.test_settings import TestSettings
from fast_rcnn.train import seed_rngs, train
from fast_rcnn.train_roidb import TrainingImages, training_roidb
from fast_rcnn.training_errors import TrainingError
from roi_data_layer.minibatch import MinibatchSettings
from utils import paths
from utils.param_str import settings_from_params, settings_params

# The cfg key of each field of the settings classes, by the settings' name in an Experiment: the
# one place where cfg's names meet the settings'. The fields of a nested settings object (a
# MinibatchSettings' sampling, a TrainSettings' box_targets) are in line with the others, as in
# a param_str.
_ROI_SAMPLING = {'batch_size': 'TRAIN.BATCH_SIZE', 'fg_fraction': 'TRAIN.FG_FRACTION',
                 'fg_thresh': 'TRAIN.FG_THRESH', 'bg_thresh_hi': 'TRAIN.BG_THRESH_HI',
                 'bg_thresh_lo': 'TRAIN.BG_THRESH_LO'}
_BOX_TARGETS = {'inside_weights': 'TRAIN.BBOX_INSIDE_WEIGHTS',
                'normalize': 'TRAIN.BBOX_NORMALIZE_TARGETS',
                'precomputed': 'TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED',
                'means': 'TRAIN.BBOX_NORMALIZE_MEANS', 'stds': 'TRAIN.BBOX_NORMALIZE_STDS',
                'thresh': 'TRAIN.BBOX_THRESH'}


def _proposal_keys(section):
    keys = {'pre_nms_top_n': section + '.RPN_PRE_NMS_TOP_N',
            'post_nms_top_n': section + '.RPN_POST_NMS_TOP_N',
            'nms_thresh': section + '.RPN_NMS_THRESH', 'min_size': section + '.RPN_MIN_SIZE'}
    if section == 'TEST':  # the Table 2 ablations are test-time only
        keys.update(no_nms='TEST.RPN_NO_NMS', mode='TEST.RPN_MODE')
    return keys


CFG_KEYS = {
    'anchor_labelling': (AnchorLabelling, {
        'positive_iou': 'TRAIN.RPN_POSITIVE_OVERLAP', 'negative_iou': 'TRAIN.RPN_NEGATIVE_OVERLAP',
        'clobber_positives': 'TRAIN.RPN_CLOBBER_POSITIVES', 'batch_size': 'TRAIN.RPN_BATCHSIZE',
        'fg_fraction': 'TRAIN.RPN_FG_FRACTION', 'positive_weight': 'TRAIN.RPN_POSITIVE_WEIGHT',
        'inside_weights': 'TRAIN.RPN_BBOX_INSIDE_WEIGHTS'}),
    'train_proposals': (ProposalSettings, _proposal_keys('TRAIN')),
    'test_proposals': (ProposalSettings, _proposal_keys('TEST')),
    'minibatch': (MinibatchSettings, dict(
        _ROI_SAMPLING, scales='TRAIN.SCALES', max_size='TRAIN.MAX_SIZE',
        pixel_means='PIXEL_MEANS', has_rpn='TRAIN.HAS_RPN', bbox_reg='TRAIN.BBOX_REG',
        ims_per_batch='TRAIN.IMS_PER_BATCH', inside_weights='TRAIN.BBOX_INSIDE_WEIGHTS')),
    'train': (TrainSettings, dict(
        _BOX_TARGETS, snapshot_iters='TRAIN.SNAPSHOT_ITERS',
        snapshot_infix='TRAIN.SNAPSHOT_INFIX', eps='EPS')),
    'test': (TestSettings, {
        'scales': 'TEST.SCALES', 'max_size': 'TEST.MAX_SIZE', 'pixel_means': 'PIXEL_MEANS',
        'has_rpn': 'TEST.HAS_RPN', 'proposal_method': 'TEST.PROPOSAL_METHOD', 'svm': 'TEST.SVM',
        'bbox_reg': 'TEST.BBOX_REG', 'dedup_boxes': 'DEDUP_BOXES', 'nms': 'TEST.NMS',
        'use_gpu_nms': 'USE_GPU_NMS', 'score_thresh': 'TEST.SCORE_THRESH',
        'max_per_image': 'TEST.MAX_PER_IMAGE'}),
    'training_images': (TrainingImages, {
        'proposal_method': 'TRAIN.PROPOSAL_METHOD', 'use_flipped': 'TRAIN.USE_FLIPPED',
        'scales': 'TRAIN.SCALES', 'max_size': 'TRAIN.MAX_SIZE'}),
}
# Plain values, by field: {field: cfg key}.
_PLAIN_KEYS = {
    'root_dir': 'ROOT_DIR', 'data_dir': 'DATA_DIR', 'models_dir': 'MODELS_DIR',
    'exp_dir': 'EXP_DIR', 'rng_seed': 'RNG_SEED', 'aspect_grouping': 'TRAIN.ASPECT_GROUPING',
    'anchor_scales': 'ANCHOR_SCALES', 'anchor_ratios': 'ANCHOR_RATIOS',
    'iter_size': 'TRAIN.ITER_SIZE', 'ranks_per_update': 'TRAIN.RANKS_PER_UPDATE',
    'rpn_lambda': 'TRAIN.RPN_LAMBDA', 'coord_gradient': 'TRAIN.COORD_GRADIENT',
    'coord_gradient_scale': 'TRAIN.COORD_GRADIENT_SCALE',
    'coord_gradient_rois': 'TRAIN.COORD_GRADIENT_ROIS'}

# The cfg keys of the settings the layers read, by name (the nested ones by their own).
_SETTINGS_KEYS = dict({name: keys for name, (_, keys) in CFG_KEYS.items()},
                      roi_sampling=_ROI_SAMPLING, box_targets=_BOX_TARGETS)
# What each of the project's Python layers reads from its param_str: the Experiment's settings
# ({name: the fields read, None for all}; 'proposals' are those of the net's phase) and plain
# values ({param_str key: (the Experiment's attribute, its cfg key)}).
_ANCHORS = {'scales': ('anchor_scales', 'ANCHOR_SCALES'),
            'ratios': ('anchor_ratios', 'ANCHOR_RATIOS')}
LAYER_SETTINGS = {
    'rpn.proposal_layer': ({'proposals': None},
                           dict(_ANCHORS, use_gpu_nms=('use_gpu_nms', 'USE_GPU_NMS'))),
    'rpn.anchor_target_layer': ({'anchor_labelling': None}, _ANCHORS),
    'rpn.proposal_target_layer': (
        {'roi_sampling': None, 'box_targets': ('inside_weights', 'precomputed', 'means', 'stds')},
        {}),
    'roi_data_layer.layer': ({'minibatch': None},
                             {'aspect_grouping': ('aspect_grouping', 'TRAIN.ASPECT_GROUPING')}),
    test_settings.MODULE: ({'test': test_settings.NET_KEYS}, {}),
}


@dataclass(frozen=True)
class Experiment:
    """Everything a run takes from the config, and the dotted cfg keys the run set (keys_set).

    The settings: anchor_labelling, train_proposals / test_proposals (the proposal layer's in a
    TRAIN / TEST net), minibatch (the RoI data layer's, with the RoI sampling rule), train
    (TrainSettings, with the roidb's box targets), test (TestSettings), training_images
    (train_roidb.TrainingImages); folders, the seed, the solver's iter_size rule and the edits of
    the nets' structure (anchors, lambda, the coordinate gradient) as plain values."""
    anchor_labelling: AnchorLabelling
    train_proposals: ProposalSettings
    test_proposals: ProposalSettings
    minibatch: MinibatchSettings
    train: TrainSettings
    test: TestSettings
    training_images: TrainingImages
    root_dir: str
    data_dir: str
    models_dir: str
    exp_dir: str
    rng_seed: int
    aspect_grouping: bool
    anchor_scales: tuple
    anchor_ratios: tuple
    iter_size: int
    ranks_per_update: int
    rpn_lambda: float
    coord_gradient: bool
    coord_gradient_scale: float
    coord_gradient_rois: str
    keys_set: frozenset = frozenset()

    @classmethod
    def from_cfg(cls, config=None, keys_set=None):
        """The experiment of a config (default: cfg) whose overrides set keys_set (default:
        fast_rcnn.config.keys_set()). ValueError for settings that do not fit together."""
        if config is None:
            config = cfg
            keys_set = config_keys_set() if keys_set is None else keys_set
        values = {}
        for name, (settings_class, keys) in CFG_KEYS.items():
            found = {field: _plain(_lookup(config, key)) for field, key in keys.items()}
            values[name] = settings_from_params(settings_class, found, 'config')
        for name, key in _PLAIN_KEYS.items():
            values[name] = _plain(_lookup(config, key))
        return cls(keys_set=frozenset(keys_set or ()), **values)

    @classmethod
    def from_cfg_with(cls, overrides, source):
        """The experiment of cfg with `overrides` (a nested dict of cfg keys, e.g. an alternating
        training step's settings) merged and counted as set; cfg itself is left as it is."""
        return cls.from_cfg(*merged_config(overrides, source))

    @classmethod
    def from_files(cls, cfg_files, overrides=None):
        """The experiment of cfg with the config files, then `overrides` (a nested dict),
        merged as a tool's --cfg and --set would merge them; cfg itself is left as it is."""
        config, keys = None, None
        for path in cfg_files:
            config, keys = merged_config(read_config_file(path), path, config, keys)
        if overrides:
            config, keys = merged_config(overrides, 'overrides', config, keys)
        return cls.from_cfg(config, keys) if config is not None else cls.from_cfg()

    def sets(self, key):
        """Whether the run set the dotted cfg key (a config file, the tool's defaults, --set)."""
        return key in self.keys_set

    # Settings by the names LAYER_SETTINGS uses.
    @property
    def roi_sampling(self):
        return self.minibatch.sampling

    @property
    def box_targets(self):
        return self.train.box_targets

    @property
    def use_gpu_nms(self):
        return self.test.use_gpu_nms

    def output_dir(self, imdb, net=None):
        """output/<EXP_DIR>/<imdb name>[/<net name>] under the root folder, created if missing."""
        return paths.output_dir(imdb, net, self.exp_dir, self.root_dir)

    def imdb(self, name):
        """The dataset called name, under the experiment's data folder."""
        from datasets.factory import get_imdb
        return get_imdb(name, self.data_dir)

    def seed(self, randomize=False):
        """The RNGs' seed of a run (None with randomize: --rand)."""
        return None if randomize else self.rng_seed

    def layer_settings(self, phase):
        """What the Python layers of a net of this phase (caffe.TRAIN or caffe.TEST) read, for
        net_surgery.with_layer_settings: {module: ({param_str key: value}, the keys whose cfg
        key the run set)}."""
        out = {}
        for module, (settings, plain) in LAYER_SETTINGS.items():
            values, cfg_keys = {}, {}
            for name, fields in settings.items():
                if name == 'proposals':
                    name = 'train_proposals' if phase == caffe.TRAIN else 'test_proposals'
                values.update(settings_params(getattr(self, name), fields))
                cfg_keys.update(_SETTINGS_KEYS[name])
            for key, (name, cfg_key) in plain.items():
                value = getattr(self, name)
                values[key] = list(value) if isinstance(value, tuple) else value
                cfg_keys[key] = cfg_key
            out[module] = (values, frozenset(k for k in values if self.sets(cfg_keys.get(k))))
        return out

    def net_changes(self, num_classes=None):
        """The edits of a net's structure the experiment asks for (fast_rcnn.net_surgery.
        net_changes keywords): the dataset's class count, the RPN anchors a run sets (paper
        Table 8), lambda of Eq. (1) (Table 9) and the proposals' coordinate gradient (Sec. 3.2)."""
        return {'classes': num_classes,
                'anchor_scales': self.anchor_scales if self.sets('ANCHOR_SCALES') else None,
                'anchor_ratios': self.anchor_ratios if self.sets('ANCHOR_RATIOS') else None,
                'rpn_lambda': self.rpn_lambda,
                'coord_gradient': self.coord_gradient,
                # 1 (a default once) leaves the net's own scale; cfg's default is 0.1.
                'coord_gradient_scale': (self.coord_gradient_scale
                                         if self.coord_gradient_scale != 1.0
                                         or self.sets('TRAIN.COORD_GRADIENT_SCALE') else None),
                'coord_gradient_rois': self.coord_gradient_rois or None}

    def solver_iter_size(self, ranks):
        """The solver's iter_size for `ranks` data-parallel ranks (0: the solver file's):
        TRAIN.ITER_SIZE when > 0, else the share of TRAIN.RANKS_PER_UPDATE that the ranks leave
        to accumulation."""
        if self.iter_size > 0 or self.ranks_per_update <= 0:
            return self.iter_size
        if self.ranks_per_update % ranks:
            raise TrainingError('TRAIN.RANKS_PER_UPDATE is %d, which %d ranks cannot share '
                                'evenly; train on a divisor of it (e.g. 1, 2, 4 or 8 GPUs for 8), '
                                'or set TRAIN.ITER_SIZE' % (self.ranks_per_update, ranks))
        return self.ranks_per_update // ranks

    def net_file(self, prototxt, num_classes, out_dir, phase):
        """The copy of prototxt that a run of this experiment uses (or prototxt itself when it
        is that already): fitted to the dataset's classes and the experiment's edits, with the
        experiment's settings in its Python layers' param_str and, for a TEST net, the test
        settings layer (fast_rcnn.net_surgery.adapted_net_file)."""
        from fast_rcnn import net_surgery
        return net_surgery.adapted_net_file(
            prototxt, out_dir, self.layer_settings(phase), test_net=phase == caffe.TEST,
            **self.net_changes(num_classes))

    def solver_file(self, solver_prototxt, num_classes, out_dir):
        """The solver file a run of this experiment trains with: solver_prototxt, or a copy whose
        train net is net_file's and whose iter_size is solver_iter_size's when > 0."""
        from fast_rcnn import net_surgery
        return net_surgery.adapted_solver_file(
            solver_prototxt, out_dir, iter_size=self.solver_iter_size(caffe.solver_count()),
            layer_settings=self.layer_settings(caffe.TRAIN), **self.net_changes(num_classes))


def _lookup(config, dotted):
    node = config
    for part in dotted.split('.'):
        node = node[part]
    return node


def _plain(value):
    """A config value as a settings value: sequences (and PIXEL_MEANS' array) as tuples."""
    if isinstance(value, np.ndarray):
        return tuple(float(v) for v in value.ravel())
    if isinstance(value, list):
        return tuple(value)
    return value


# The runs the tools make of an experiment ----------------------------------------------------

@dataclass(frozen=True)
class Training:
    """A training run set up by train_experiment: the imdb and roidb, the output folder, the
    solver file (with its net's copy) to train with, the initial weights."""
    experiment: Experiment
    imdb: object
    roidb: list
    output_dir: str
    solver_file: str
    pretrained_model: object = None

    def run(self, max_iters, restore=None, randomize=False, uid=None):
        """Trains to iteration max_iters (fast_rcnn.train.train); returns its TrainResult."""
        return train(self.solver_file, self.roidb, self.output_dir, max_iters,
                     pretrained_model=self.pretrained_model, restore=restore,
                     seed=self.experiment.seed(randomize), settings=self.experiment.train,
                     uid=uid)

    def solver_wrapper(self, randomize=False):
        """The seeded solver, its net fed the roidb, without training (for tools that measure
        a net during training: tools/coord_gradient_norms.py, the benchmarks)."""
        seed = self.experiment.seed(randomize)
        if seed is not None:
            seed_rngs(seed)
        return SolverWrapper(self.solver_file, self.roidb, self.output_dir,
                             pretrained_model=self.pretrained_model,
                             settings=self.experiment.train, shuffle_seed=seed)


def train_experiment(experiment, solver_prototxt, imdb_name, pretrained_model=None,
                     rpn_files=None):
    """A Training of the experiment on the dataset imdb_name ('+' joins several): its roidb
    (with the proposals of rpn_files for the proposal method 'rpn'), its output folder, and
    there the copies of the solver and its net that the run uses (Experiment.solver_file)."""
    imdb, roidb = training_roidb(imdb_name, experiment.training_images, experiment.data_dir,
                                 rpn_files)
    print('%d roidb entries' % len(roidb), flush=True)
    output_dir = experiment.output_dir(imdb)
    print('Output will be saved to `%s`' % output_dir, flush=True)
    solver = experiment.solver_file(solver_prototxt, imdb.num_classes, output_dir)
    return Training(experiment, imdb, roidb, output_dir, solver, pretrained_model)


@dataclass(frozen=True)
class Testing:
    """A test net set up by test_experiment: the imdb (None without one), the net (named after
    its weights), the prototxt it was built from (the copy the run uses), its weights, the
    output folder and the test settings."""
    imdb: object
    net: object
    prototxt: str
    caffemodel: object
    output_dir: str
    settings: TestSettings

    def run(self, vis=False):
        """Detects, saves and evaluates (fast_rcnn.test.run_test); returns its TestResult."""
        from fast_rcnn.test import run_test
        return run_test(self.net, self.imdb, self.output_dir, self.settings, vis,
                        model_files=(self.prototxt, self.caffemodel))


def test_experiment(experiment, prototxt, caffemodel, imdb_name=None, proposals=None,
                    max_per_image=None, output_dir=None, onnx=None):
    """A Testing of the model (prototxt, caffemodel) on the dataset imdb_name: the copy of the
    prototxt with the experiment's settings (Experiment.net_file) in output_dir (default:
    output/<EXP_DIR>/<imdb>/<model name>/), and the net built from it. The net proposes its own
    boxes when it has a proposal layer, unless the run sets TEST.HAS_RPN False; then, or with a
    proposals file (tools/rpn_generate.py's), the detector alone is tested on given boxes.
    max_per_image: a cap on detections per image instead of the settings'. Without imdb_name
    (the benchmarks) the net keeps its class count and caffemodel may be None (the fillers'
    weights); output_dir is then needed. onnx: an exported graph (tools/export_onnx.py) run in
    ONNX Runtime instead, with the test settings it was exported with (prototxt and caffemodel
    unused); its results go to <graph name>_onnx/."""
    from fast_rcnn import net_surgery
    imdb = experiment.imdb(imdb_name) if imdb_name else None
    if onnx:
        from caffe.onnx_export.runner import OnnxNet
        from fast_rcnn.onnx_model import settings_of
        net = OnnxNet(onnx)
        settings = settings_of(net)
        has_rpn, net_file, caffemodel = settings.has_rpn, onnx, onnx
        net.name = name = net.name + '_onnx'
    else:
        has_rpn = bool(net_surgery.proposal_layers(net_surgery.read_net(prototxt)))
        if experiment.sets('TEST.HAS_RPN'):
            has_rpn = experiment.test.has_rpn
        name = _stem(caffemodel) if caffemodel else _stem(prototxt)
    method = experiment.test.proposal_method
    if proposals:
        if onnx and has_rpn:
            raise ValueError('%s proposes its own boxes (it has no rois input); --proposals '
                             'needs a graph exported from a net without an RPN' % onnx)
        has_rpn = False
        method = 'rpn'
    if imdb is not None:
        if proposals:
            imdb.config['rpn_file'] = proposals
        if not has_rpn and method != 'dense':
            imdb.set_proposal_method(method)
    output_dir = output_dir or experiment.output_dir(imdb, name)
    if not onnx:
        net_file = experiment.net_file(prototxt, imdb.num_classes if imdb else None, output_dir,
                                       caffe.TEST)
        if not has_rpn:
            net_file = net_surgery.detector_net_file(net_file, output_dir)
        net = caffe.Net(net_file, caffemodel, caffe.TEST) if caffemodel else \
            caffe.Net(net_file, caffe.TEST)
        net.name = name
        settings = test_settings.of_net(net)
    settings = settings.replace(proposal_method=method)
    if max_per_image is not None:
        settings = settings.replace(max_per_image=max_per_image)
    return Testing(imdb, net, net_file, caffemodel, output_dir, settings)


test_experiment.__test__ = False  # not a pytest test, whatever module imports it


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]
