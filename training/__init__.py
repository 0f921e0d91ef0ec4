"""training: datasets -> face-crop cache -> (self-blended) training -> evaluated dfstream
checkpoints. Run ``python -m training --help``."""
