// Merged into @jupyterlab/builder's webpack config. Module and chunk ids by order instead of
// hashes that include the checkout's absolute path: the build is then byte-identical wherever
// the repository lives, which `scripts/build-labextension --check` relies on.
module.exports = {
  optimization: { moduleIds: 'natural', chunkIds: 'natural' }
};
