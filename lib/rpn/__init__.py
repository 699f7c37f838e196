"""Region Proposal Network (paper Sec. 3.1): anchors, anchor targets, proposals and proposal
targets."""
