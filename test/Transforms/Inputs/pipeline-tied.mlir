// Input of test/Transforms/trainopt-partition-model.mlir (attention) and
// trainopt-pipeline.mlir (pipeline-tied), whose CHECK lines assert on it;
// lit does not run files under Inputs/.
// A model whose first and last layers share @w (tied weights): no
// pipeline cut can keep @w in one stage.
trainopt.parameter @w trainable : tensor<4x4xf32> = dense<0.1> : tensor<4x4xf32>
func.func @forward(%w: tensor<4x4xf32> {trainopt.param = @w},
                   %x: tensor<5x4xf32> {trainopt.input = "x"}, %y: tensor<5xi64> {trainopt.input = "labels", trainopt.role = #trainopt<role labels>})
    -> (tensor<f32> {trainopt.output = "loss", trainopt.role = #trainopt<role loss>}) {
  %0 = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<4x4xf32>) -> tensor<5x4xf32> loc("fc1")
  %1 = trainopt.relu %0 : tensor<5x4xf32> loc("relu")
  %2 = trainopt.matmul %1, %w {transpose_rhs = true} : (tensor<5x4xf32>, tensor<4x4xf32>) -> tensor<5x4xf32> loc("fc2")
  %l = trainopt.cross_entropy %2, %y {reduction = #trainopt<reduction mean>} : (tensor<5x4xf32>, tensor<5xi64>) -> tensor<f32> loc("loss")
  return %l : tensor<f32>
}
