"""Image / label transforms of the DGVFM (mmsegmentation-style) data pipelines."""
