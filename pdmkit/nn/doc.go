// Package nn is the small feed-forward neural-network library the scorer and
// the trainer share: dense layers, activations, losses, backpropagation,
// SGD with momentum and Adam, mini-batches, L2 regularisation, early stopping
// and a feature scaler.
//
// Invariants:
//   - All parameters of a Network live in one contiguous slice (Params); each
//     layer's weights and biases are views into it, so optimizers, checksums
//     and artifact writers work on one vector.
//   - Weights are stored row-major In×Out, so a batch forward pass is one
//     GEMM per layer (rows = windows) and a single window is one GEMV.
//   - Forward (one window) allocates nothing: it writes into buffers owned by
//     the Network, which is why a Network is not safe for concurrent use.
//     Clone gives each goroutine its own buffers over the same weights.
//   - Batch passes (Train, Gradient, Loss, Predict) multiply with the
//     package's own packed GEMM: an AVX2/FMA assembly kernel where the CPU
//     has it, a portable Go one otherwise (gemm.go); weights are read in
//     place. Forward (one window) uses gonum's GEMV.
//   - Scoring and gradients run in float64. Training runs in float64, or
//     with TrainConfig.Float32 (what the detectors and the trainer use) in
//     float32 throughout, optimizer included, as PyTorch trains; Params
//     stays the float64 model that is saved and scored.
//   - Training with the same seed, data and configuration gives bit-identical
//     weights on a given CPU and build, whatever GOMAXPROCS is; the
//     assembly and portable kernels may differ in the last bits.
package nn
