// A model whose attention-style mask is -inf by construction (trainopt-run
// --explain-overflow must not blame it): explain-overflow.test.
module {
  trainopt.parameter @w trainable : tensor<4x3xf32> = dense<0.1> : tensor<4x3xf32>
  func.func @forward(%w: tensor<4x3xf32> {trainopt.param = @w}, %x: tensor<2x4xf32> {trainopt.input = "x"}) -> (tensor<2x3xf32> {trainopt.output = "y"}) {
    %0 = trainopt.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %m = trainopt.constant dense<[[true, false, false], [true, true, false]]> : tensor<2x3xi1>
    %ninf = trainopt.constant dense<0xFF800000> : tensor<f32>
    %1 = trainopt.where %m, %0, %ninf : (tensor<2x3xi1>, tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %2 = trainopt.softmax %1 {axis = 1 : i64} : tensor<2x3xf32>
    return %2 : tensor<2x3xf32>
  }
}
