"""Datasets: image databases (imdb) and their roidbs. Names to objects: datasets.factory.

  imdb.py        the base class and roidb helpers (flipping, proposals, recall)
  pascal_voc.py  PASCAL VOC 2007/2012; voc_eval.py its evaluation; voc_xml.py its XML reader
  coco.py        MS COCO through pycocotools
  custom.py      your own VOC-layout dataset with a classes.txt
  toy.py         the generated synthetic dataset (data/toy)
"""
