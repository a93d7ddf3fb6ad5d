"""Recognise bad-data errors, so the tools can report them in one line.

A corrupt image or a broken dataset folder surfaces deep in a run: in the
dataset's ``load_data_list`` when the runner builds the loader, or in the
pipeline of one sample, possibly re-raised from a DataLoader worker with
the worker's traceback folded into the message. The plugin's datasets
(:class:`~mmseg_refinenet.datasets.base_dataset.StrictSegDataset`) raise
``FileNotFoundError`` / ``OSError`` messages that start with the dataset's
name and name the file; MMCV's ``LoadImageFromFile`` (MMSeg's own datasets)
asserts ``failed to load image: PATH``. :func:`data_error_message` finds
either in an exception chain; everything else is left alone, so a real bug
keeps its traceback.
"""
import re

_PATTERNS = (
    # the plugin's datasets: "CamVidDataset: image file '...' ..."
    re.compile(r"(?:^|\s)(\w+Dataset: .*(?:file|folder|ann_file|images) .*)"),
    # MMCV's LoadImageFromFile
    re.compile(r'(failed to load image: \S+)'),
)


def data_error_message(err):
    """The bad-data message in ``err`` or its causes, or None.

    Args:
        err (BaseException): An exception from a run.

    Returns:
        str | None: One line naming the file and what to do, or None when
        ``err`` is not a bad-data error.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (OSError, AssertionError)):
            for line in str(err).splitlines():
                for pattern in _PATTERNS:
                    m = pattern.search(line)
                    if not m:
                        continue
                    text = m[1]
                    if text.startswith('failed to load image: '):
                        path = text[len('failed to load image: '):]
                        return (f'image file {path} could not be decoded; '
                                'expected a readable image: re-convert it '
                                'or remove it with its label map')
                    return text
        err = err.__cause__ or err.__context__
    return None
