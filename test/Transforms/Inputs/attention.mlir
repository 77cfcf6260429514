// Input of test/Transforms/trainopt-partition-model.mlir (attention) and
// trainopt-pipeline.mlir (pipeline-tied), whose CHECK lines assert on it;
// lit does not run files under Inputs/.
// Causal self-attention of 2 heads of 4 features (GPT-2's layout: one fused
// q, k, v projection, then an output projection), as the ONNX importer
// writes it.
trainopt.parameter @wqkv trainable : tensor<8x24xf32> = dense<0.1> : tensor<8x24xf32>
trainopt.parameter @bqkv trainable : tensor<24xf32> = dense<0.0> : tensor<24xf32>
trainopt.parameter @wo trainable : tensor<8x8xf32> = dense<0.1> : tensor<8x8xf32>
func.func @forward(%wqkv: tensor<8x24xf32> {trainopt.param = @wqkv}, %bqkv: tensor<24xf32> {trainopt.param = @bqkv},
                   %wo: tensor<8x8xf32> {trainopt.param = @wo}, %x: tensor<2x4x8xf32> {trainopt.input = "x"})
    -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %wqkv : (tensor<2x4x8xf32>, tensor<8x24xf32>) -> tensor<2x4x24xf32>
  %1 = trainopt.add %0, %bqkv : (tensor<2x4x24xf32>, tensor<24xf32>) -> tensor<2x4x24xf32>
  %2:3 = trainopt.split %1 {axis = 2 : i64, sizes = array<i64: 8, 8, 8>} : (tensor<2x4x24xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>)
  %3 = trainopt.reshape %2#0 : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %4 = trainopt.transpose %3 {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x4x2x4xf32>) -> tensor<2x2x4x4xf32>
  %5 = trainopt.reshape %2#1 : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %6 = trainopt.transpose %5 {permutation = array<i64: 0, 2, 3, 1>} : (tensor<2x4x2x4xf32>) -> tensor<2x2x4x4xf32>
  %7 = trainopt.reshape %2#2 : tensor<2x4x8xf32> -> tensor<2x4x2x4xf32>
  %8 = trainopt.transpose %7 {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x4x2x4xf32>) -> tensor<2x2x4x4xf32>
  %9 = trainopt.matmul %4, %6 : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %c2 = trainopt.constant dense<2.0> : tensor<f32>
  %10 = trainopt.div %9, %c2 : (tensor<2x2x4x4xf32>, tensor<f32>) -> tensor<2x2x4x4xf32>
  %mask = trainopt.constant dense<[[false, true, true, true], [false, false, true, true], [false, false, false, true], [false, false, false, false]]> : tensor<4x4xi1>
  %big = trainopt.constant dense<-1.0e9> : tensor<f32>
  %11 = trainopt.where %mask, %big, %10 : (tensor<4x4xi1>, tensor<f32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %12 = trainopt.softmax %11 {axis = 3 : i64} : tensor<2x2x4x4xf32>
  %13 = trainopt.matmul %12, %8 : (tensor<2x2x4x4xf32>, tensor<2x2x4x4xf32>) -> tensor<2x2x4x4xf32>
  %14 = trainopt.transpose %13 {permutation = array<i64: 0, 2, 1, 3>} : (tensor<2x2x4x4xf32>) -> tensor<2x4x2x4xf32>
  %15 = trainopt.reshape %14 : tensor<2x4x2x4xf32> -> tensor<2x4x8xf32>
  %16 = trainopt.matmul %15, %wo : (tensor<2x4x8xf32>, tensor<8x8xf32>) -> tensor<2x4x8xf32>
  %l = trainopt.reduce_sum %16 : (tensor<2x4x8xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
