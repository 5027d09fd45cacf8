"""The ModelKit as an OCI artifact: media types, manifests, tar layers in and out, and kit's
local storage layout under ``$KITOPS_HOME/storage``."""
