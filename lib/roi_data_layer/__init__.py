"""The training data layer: roidb preparation, minibatch sampling and the RoIDataLayer that feeds
images, ground truth (RPN / end-to-end) or sampled RoIs (Fast R-CNN) to the net."""
