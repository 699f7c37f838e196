"""The roidb a training run reads: one dataset or several joined with '+' (the paper's 07+12),
with the boxes of a proposal method, flipped copies, entries prepared for the data layer, and
those that can give no minibatch left out."""
from dataclasses import dataclass

import roi_data_layer.roidb as rdl_roidb
from fast_rcnn.training_errors import TrainingError
from utils import paths


@dataclass(frozen=True)
class TrainingImages:
    """proposal_method: where the training RoIs come from ('gt', 'rpn', 'selective_search',
    'dense', ...; the imdb's <method>_roidb); use_flipped: add horizontally flipped copies;
    scales / max_size: how training scales images (dense windows are made for them)."""
    proposal_method: str = 'selective_search'
    use_flipped: bool = True
    scales: tuple = (600,)
    max_size: int = 1000


def get_training_roidb(imdb, use_flipped=True):
    """The roidb to train on: with use_flipped, every image also mirrored; entries prepared for
    the data layer (image paths, sizes, max overlaps)."""
    if use_flipped:
        print('Appending horizontally-flipped training examples...', flush=True)
        imdb.append_flipped_images()
        print('done', flush=True)
    print('Preparing training data...', flush=True)
    rdl_roidb.prepare_roidb(imdb)
    print('done', flush=True)
    return imdb.roidb


def training_roidb(imdb_names, images=TrainingImages(), data_dir=paths.DATA_DIR, rpn_files=None):
    """The imdb and training roidb of one dataset name, or of several joined with '+', under
    data_dir, with images.proposal_method's boxes. rpn_files: the proposals file of each dataset
    for the method 'rpn' (one path, or a list parallel to the names)."""
    from datasets.factory import get_imdb
    from datasets.imdb import imdb as imdb_class
    names = imdb_names.split('+')
    if not isinstance(rpn_files, (list, tuple)):
        rpn_files = [rpn_files] * len(names)
    if len(rpn_files) != len(names):
        raise TrainingError('%d proposal files for the %d datasets of %s'
                            % (len(rpn_files), len(names), imdb_names))
    imdbs, roidb = [], []
    for name, rpn_file in zip(names, rpn_files):
        imdb = get_imdb(name, data_dir)
        print('Loaded dataset `%s` for training' % imdb.name, flush=True)
        if rpn_file is not None:
            imdb.config['rpn_file'] = rpn_file
        # Dense windows (Table 10) are made for images scaled as training scales them.
        imdb.config['dense_scales'] = tuple(images.scales)
        imdb.config['dense_max_size'] = images.max_size
        imdb.set_proposal_method(images.proposal_method)
        print('Set proposal method: %s' % images.proposal_method, flush=True)
        roidb.extend(get_training_roidb(imdb, images.use_flipped))
        imdbs.append(imdb)
    if len(imdbs) == 1:
        return imdbs[0], roidb
    if len({im.classes for im in imdbs}) != 1:
        raise TrainingError('datasets %s do not share one class list' % imdb_names)
    return imdb_class(imdb_names, imdbs[0].classes), roidb


def filter_roidb(roidb, sampling):
    """Drops the entries with neither a foreground nor a background RoI under the RoI rule
    (sampling: core.sampling.RoISampling, the net's data layer's)."""

    def has_training_rois(entry):
        fg, bg = sampling.fg_bg_masks(entry['max_overlaps'])
        return bool(fg.any() or bg.any())

    kept = [entry for entry in roidb if has_training_rois(entry)]
    print('Filtered %d roidb entries: %d -> %d' % (len(roidb) - len(kept), len(roidb), len(kept)),
          flush=True)
    return kept
