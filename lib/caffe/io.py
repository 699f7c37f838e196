"""caffe.io: reading and writing Caffe's files (text .prototxt, binary .caffemodel/.solverstate,
written atomically), and pycaffe's conversions between arrays and Caffe's messages (BlobProto,
BlobProtoVector, Datum) and its image helpers (load_image, resize_image, oversample, Transformer,
from caffe.preprocessing). The upgrade of old files lives in caffe.upgrade."""
import math
import os
import re
import shutil
import tempfile

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from .blob import MAX_BLOB_COUNT, check_shape
from .common import CaffeError
from .preprocessing import Transformer, load_image, oversample, resize_image  # noqa: F401
from .proto import caffe_pb2
from .upgrade import upgrade_net, upgrade_weights  # noqa: F401

# pycaffe's caffe.io imports scikit-image's io, whose default 'pil' plugin imports PIL.Image, so
# after `import caffe` PIL.Image is loaded; py-faster-rcnn's datasets/imdb.py relies on that
# (it does `import PIL` and calls PIL.Image.open). This runtime does not use scikit-image.
try:
    import PIL.Image  # noqa: F401
except ImportError:  # Pillow missing: nothing to keep loaded
    pass


def not_found(path, what='file'):
    """pycaffe's error for a file it cannot open (a RuntimeError: CaffeError is one)."""
    return CaffeError('Could not open file %s (%s not found)' % (path, what))


def read_prototxt(path, message):
    """Parses a text-format file into `message` (a protobuf message instance) and returns it."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise not_found(path) from None
    except OSError as e:
        raise CaffeError('Could not open file %s: %s' % (path, e.strerror or e)) from None
    except ValueError:  # a NUL byte in the path (a path field of another file, say)
        raise not_found(repr(path)) from None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        line = data.count(b'\n', 0, e.start) + 1
        raise CaffeError('%s:%d: not UTF-8 text (byte 0x%02x at offset %d): a %s file is '
                         'protobuf text' % (path, line, data[e.start], e.start,
                                            message.DESCRIPTOR.name)) from None
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        # ParseError carries the line and column; its text already starts with "line:col : ".
        line, col = e.GetLine(), e.GetColumn()
        msg = str(e)
        if line is not None and msg.startswith('%d:%d' % (line, col)):
            msg = msg.split(':', 2)[-1].strip()
        where = '%s:%s:%s' % (path, line, col) if line is not None else path
        raise CaffeError('%s: syntax error in %s: %s'
                         % (where, message.DESCRIPTOR.name, msg))
    if not message.IsInitialized():
        # Caffe's TextFormat::Parse refuses a message missing a required field (proto2's
        # `required`, as ClipParameter's min and max).
        raise CaffeError('%s: %s is missing required fields: %s'
                         % (path, message.DESCRIPTOR.name,
                            ', '.join(message.FindInitializationErrors())))
    return message


def read_binary(path, message, what='file'):
    """Parses a binary protobuf file (.caffemodel, .solverstate) into `message`."""
    if not os.path.isfile(path):
        raise not_found(path, what)
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise CaffeError('%s %s is empty' % (what, path))
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError) as e:
        raise CaffeError('%s %s is not a valid %s (truncated or another format?): %s'
                         % (what, path, message.DESCRIPTOR.name, e))
    bad = _invalid_text_field(message)
    if bad:
        raise CaffeError('%s %s is not a valid %s: field %s is not UTF-8 text'
                         % (what, path, message.DESCRIPTOR.name, bad))
    return message


def _invalid_text_field(message, prefix=''):
    """The path (layer[2].name) of the first string field that is not valid UTF-8, or None.
    protobuf's binary parser keeps such a proto2 string as bytes (reading it gives bytes, or
    UnicodeDecodeError), which would fail anywhere in the runtime that uses it as text."""
    for field in message.DESCRIPTOR.fields:
        is_text = field.type == field.TYPE_STRING
        if not is_text and field.cpp_type != field.CPPTYPE_MESSAGE:
            continue
        if field.is_repeated:
            container = getattr(message, field.name)
            entries = [('%s%s[%d]' % (prefix, field.name, i), container, i)
                       for i in range(len(container))]
        elif message.HasField(field.name):
            entries = [(prefix + field.name, message, field.name)]
        else:
            continue
        for name, holder, key in entries:
            try:
                value = holder[key] if isinstance(key, int) else getattr(holder, key)
            except UnicodeDecodeError:
                return name
            if is_text and not isinstance(value, str):
                return name
            if not is_text:
                bad = _invalid_text_field(value, name + '.')
                if bad:
                    return bad
    return None


def write_binary(path, message):
    """Writes a message atomically: a temporary file in the same folder, then a rename, so a
    crash never leaves a half-written file under the final name."""
    atomic_write(path, message.SerializeToString())


def atomic_write(path, data):
    """Writes path so that readers see the old file or the whole new one, never a part: into a
    temporary file in the same folder, synced, then renamed over path (folders are made).
    data: bytes, str (written as UTF-8), or a function given the open binary file to write to.
    The temporary file is removed when anything fails. An OSError that names no file (a full
    disk, a file size limit) is raised again naming path."""
    try:
        _atomic_write(path, data)
    except OSError as e:
        named = naming_file(e, path)
        if named is e:
            raise
        raise named from e


class AtomicFolder:
    """A folder built under a temporary name beside `path` and renamed to `path` once complete,
    so `path` is never a half-built folder (a database: tools/convert_imageset.py). As a context
    manager: renamed into place when the block ends normally, removed when it raises.
    `path` must not exist (as Caffe refuses to write a database over an existing one)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        if os.path.lexists(self.path):
            raise CaffeError('%s already exists; not writing over it' % path)
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(self.path) + '.', suffix='.tmp',
                                    dir=parent)
        # mkdtemp makes the folder 0700; it gets what os.mkdir() would have given it.
        os.chmod(self.tmp, 0o777 & ~umask())

    def commit(self):
        """Renames the finished folder to path (refusing a path made meanwhile)."""
        if os.path.lexists(self.path):
            self.discard()
            raise CaffeError('%s appeared while it was being written; not writing over it'
                             % self.path)
        os.rename(self.tmp, self.path)

    def discard(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.commit()
        else:
            self.discard()
        return False


def naming_file(error, path):
    """An OSError that names no file (a full disk, a file size limit: the system's message
    says what, not where) as the same error naming path; other errors as they are."""
    if error.filename is not None or not error.errno:
        return error
    return type(error)(error.errno, error.strerror, path)


def umask():
    """The process's umask, for giving a file or folder made under a temporary name (mkstemp:
    0600, mkdtemp: 0700) the mode open() or os.mkdir() would have given it."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # No /proc (or an old kernel): reading the umask means setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path, data):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        # mkstemp makes the file 0600; the renamed file gets what open() would have given it
        # (0666 less the umask), as Caffe's own writers do, so others sharing data/ and output/
        # can read it.
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Blobs <-> arrays: the runtime's reading -------------------------------------------------------

def blobproto_shape(proto):
    """The shape Caffe's Blob::FromProto gives a BlobProto: its `shape`, else the legacy
    num/channels/height/width, else (for a shapeless list of values) one axis; CaffeError for a
    shape no Blob can take (Blob::Reshape's checks)."""
    if proto.HasField('shape'):
        shape = tuple(int(d) for d in proto.shape.dim)
    elif proto.num or proto.channels or proto.height or proto.width:
        shape = (proto.num, proto.channels, proto.height, proto.width)
    else:
        shape = (len(proto.data) or len(proto.double_data),)
    check_shape(shape)
    return shape


def blob_values(proto, diff=False):
    """A BlobProto's data (or diff) as float32 in blobproto_shape; double_data when present, as
    Caffe's FromProto reads it. (pycaffe's blobproto_to_array below keeps pycaffe's rules.)"""
    shape = blobproto_shape(proto)
    if diff:
        values = proto.double_diff if len(proto.double_diff) else proto.diff
    else:
        values = proto.double_data if len(proto.double_data) else proto.data
    with np.errstate(over='ignore'):  # double_data beyond float32 becomes inf, as in Caffe
        arr = np.asarray(values, dtype=np.float32)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise CaffeError('blob of shape %s holds %d values' % (shape, arr.size))
    return arr.reshape(shape)


def legacy_shape_matches(proto, shape):
    """Caffe accepts a legacy 4-D blob (num, channels, height, width) for a blob of fewer axes
    when the shapes agree after padding the blob's shape with leading 1s."""
    if proto.HasField('shape') or len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded == (proto.num, proto.channels, proto.height, proto.width)


def read_blobproto(path, what='blob file'):
    """The array of a .binaryproto file (one BlobProto: a mean file as compute_image_mean and
    Caffe's data layers' mean_file use it), float32 in its shape, as Caffe's
    ReadProtoFromBinaryFile + Blob::FromProto read it."""
    proto = read_binary(path, caffe_pb2.BlobProto(), what)
    try:
        return blob_values(proto)
    except CaffeError as e:
        raise CaffeError('%s %s: %s' % (what, path, e)) from None


# pycaffe's conversions --------------------------------------------------------------------------

def blobproto_to_array(blob, return_diff=False):
    """pycaffe's caffe.io.blobproto_to_array: the values as a float64 array (pycaffe builds it
    with np.array over the float field), shaped by the legacy num/channels/height/width when any
    of them is set, else by `shape`. So a blob with one value and no shape is a 0-d array, and one
    with several values and no shape raises ValueError, as in pycaffe."""
    values = np.array(blob.diff if return_diff else blob.data, dtype=np.float64)
    if any(blob.HasField(f) for f in ('num', 'channels', 'height', 'width')):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if any(d < 0 for d in shape) or math.prod(d for d in shape if d) > MAX_BLOB_COUNT:
        raise ValueError('BlobProto of shape %s: no blob has that shape' % (shape,))
    if values.size != math.prod(shape):
        raise ValueError('BlobProto of shape %s holds %d %s values'
                         % (shape, values.size, 'diff' if return_diff else 'data'))
    return values.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with arr's shape and values (float32), and diff's values when given."""
    arr = np.asarray(arr)
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend(arr.shape)
    proto.data.extend(np.asarray(arr, dtype=np.float32).ravel().tolist())
    if diff is not None:
        diff = np.asarray(diff)
        if diff.size != arr.size:
            raise ValueError('array_to_blobproto: diff has %d values, the array %d'
                             % (diff.size, arr.size))
        proto.diff.extend(np.asarray(diff, dtype=np.float32).ravel().tolist())
    return proto


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized):
    """The arrays of a serialized BlobProtoVector (float64, as blobproto_to_array)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum from a (channels, height, width) array: uint8 arrays as the bytes field `data`
    (how Caffe's image databases store pixels), anything else as float_data."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError('array_to_datum: expected a 3-d (channels, height, width) array, got '
                         'shape %s' % (arr.shape,))
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    else:
        datum.float_data.extend(np.asarray(arr, dtype=np.float32).ravel().tolist())
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """The (channels, height, width) array of a Datum: uint8 from `data`, else float64 from
    float_data (as pycaffe). The label stays in datum.label."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float64).reshape(shape)


# Caffe's image and Datum readers (util/io.cpp) --------------------------------------------------

def read_image(path, height=0, width=0, is_color=True):
    """An image file as Caffe's ReadImageToCVMat reads it: OpenCV's decoding, BGR (H, W, 3)
    uint8 with is_color, else gray (H, W); resized to (height, width) with OpenCV's bilinear
    resize when both are positive. Raises CaffeError naming the file where OpenCV cannot read
    it (Caffe logs "Could not open or find file" and returns an empty image)."""
    import cv2
    if not os.path.isfile(path):
        raise not_found(path, 'image')
    image = cv2.imread(path, cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CaffeError('Could not read image %s (not an image OpenCV decodes, or damaged)'
                         % path)
    if height > 0 and width > 0:
        image = cv2.resize(image, (width, height))
    return image


def image_to_chw(image):
    """An OpenCV image (H, W) or (H, W, C) as a (C, H, W) view, Caffe's Datum layout."""
    return image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)


def _encoding_matches(path, encoding):
    # Caffe's matchExt: the file's extension, lower-cased, is the encoding ("jpeg" for "jpg").
    ext = path.rsplit('.', 1)[-1].lower()
    encoding = encoding.lower()
    return ext == encoding or (encoding == 'jpg' and ext == 'jpeg')


def read_image_to_datum(path, label, height=0, width=0, is_color=True, encoding=''):
    """Caffe's ReadImageToDatum: the image's pixels (C, H, W) in `data`, or, with an encoding
    ('png', 'jpg', ...), the image encoded: the file's own bytes when it needs no change (colour
    as asked, no resize, the same extension), else re-encoded by OpenCV. Raises CaffeError where
    the image cannot be read or encoded."""
    import cv2
    image = read_image(path, height, width, is_color)
    if not encoding:
        return array_to_datum(image_to_chw(image), label)
    datum = caffe_pb2.Datum(label=label, encoded=True)
    if ((image.ndim == 3) == is_color and not height and not width
            and _encoding_matches(path, encoding)):
        with open(path, 'rb') as f:
            datum.data = f.read()
        return datum
    try:
        ok, buf = cv2.imencode('.' + encoding, image)
    except cv2.error:
        ok = False
    if not ok:
        raise CaffeError('cannot encode %s as %r (an encoding OpenCV writes: png, jpg, bmp, ...)'
                         % (path, encoding))
    datum.data = buf.tobytes()
    return datum


def decode_datum(datum, force_color=False, force_gray=False):
    """A Datum's values as a (channels, height, width) array, as Caffe's data layers read it:
    an encoded image decoded by OpenCV (colour or gray when forced, else as stored), uint8
    pixels from `data`, or float32 from `float_data`. Raises ValueError saying what is wrong
    with a record that is none of these."""
    if datum.encoded:
        return _decode_image(datum.data, force_color, force_gray)
    shape = (datum.channels, datum.height, datum.width)
    if min(shape) <= 0:
        raise ValueError('Datum has shape %d x %d x %d (channels x height x width); every size '
                         'must be positive' % shape)
    count = shape[0] * shape[1] * shape[2]
    if len(datum.data):
        if len(datum.data) != count:
            raise ValueError('Datum holds %d bytes of pixels for a %d x %d x %d image (%d)'
                             % ((len(datum.data),) + shape + (count,)))
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise ValueError('Datum holds %d float_data values for a %d x %d x %d image (%d)'
                         % ((len(datum.float_data),) + shape + (count,)))
    return np.array(datum.float_data, dtype=np.float32).reshape(shape)


def _decode_image(data, force_color, force_gray):
    import cv2
    if force_color and force_gray:
        raise ValueError('cannot force both colour and gray')
    flag = (cv2.IMREAD_COLOR if force_color else cv2.IMREAD_GRAYSCALE if force_gray
            else cv2.IMREAD_UNCHANGED)
    image = None
    if len(data):
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
        except cv2.error:
            image = None
    if image is None:
        raise ValueError('encoded Datum of %d bytes is not an image OpenCV decodes' % len(data))
    if image.dtype != np.uint8:
        raise ValueError('encoded Datum decodes to %s pixels; Caffe takes 8-bit images only'
                         % image.dtype)
    return image_to_chw(image)


def read_mean_file(path):
    """A mean file (a BlobProto written as .binaryproto, e.g. by compute_image_mean) as the
    (channels, height, width) float32 array Caffe's DataTransformer subtracts: the blob's
    legacy channels, height and width (missing trailing axes count 1), its first image."""
    proto = read_binary(path, caffe_pb2.BlobProto(), 'mean file')
    try:
        values = blob_values(proto)
    except (CaffeError, ValueError) as e:  # ValueError: a shape numpy cannot take
        raise CaffeError('mean file %s: %s' % (path, e)) from None
    shape = values.shape
    if len(shape) > 4:
        raise CaffeError('mean file %s holds a %d-axis blob %s; a mean image has at most 4 '
                         '(num, channels, height, width)' % (path, len(shape), shape))
    legacy = tuple(shape) + (1,) * (4 - len(shape))
    if 0 in legacy:
        raise CaffeError('mean file %s holds an empty blob of shape %s' % (path, shape))
    return values.ravel()[:legacy[1] * legacy[2] * legacy[3]].reshape(legacy[1:])


def read_text_lines(path, what):
    """The lines of a text file Caffe reads (list and window files), numbered from 1, without
    their line ends. Raises CaffeError naming the file when it is missing, unreadable or not
    text."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise not_found(path, what) from None
    except OSError as e:
        raise CaffeError('Could not open file %s: %s' % (path, e.strerror or e)) from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b'\n') + 1
        raise CaffeError('%s:%d: %s is not UTF-8 text (byte %d)' % (path, line, what, e.start))
    if '\0' in text:
        line = text[:text.index('\0')].count('\n') + 1
        raise CaffeError('%s:%d: %s holds a NUL byte (a binary file?)' % (path, line, what))
    return list(enumerate(text.split('\n'), 1))


_INTEGER = re.compile(r'[+-]?[0-9]+')


def read_image_list(path):
    """An image list file as Caffe's ImageData layer and convert_imageset read it: one image per
    line, "<file name> <integer label>", split at the line's last space (so names may hold
    spaces). Returns [(name, label, line number)]. Blank lines are skipped; a line without a
    label, or with one that is not an integer, raises CaffeError naming the file and line (Caffe
    would read its label as 0 with atoi)."""
    entries = []
    for number, line in read_text_lines(path, 'image list'):
        line = line.rstrip('\r')
        if not line.strip():
            continue
        name, _, label = line.rpartition(' ')
        value = int(label) if _INTEGER.fullmatch(label) else None
        if not name or value is None or not -2 ** 31 <= value < 2 ** 31:
            raise CaffeError('%s:%d: expected "<image file> <integer label>", got %r'
                             % (path, number, line[:200]))
        entries.append((name, value, number))
    if not entries:
        raise CaffeError('image list %s is empty' % path)
    return entries
