// RUN: trainopt-opt %s -split-input-file -trainopt-assign-precision="amp=bf16" -verify-diagnostics

// Models the pass rejects. Its errors are the module's (the model as a
// whole), so each case spells its module out.

// Mixed precision starts from f32 masters: an f64 parameter is an error,
// not a silent narrowing.
// expected-error @+1 {{--amp=bf16: mixed precision starts from an f32 model, but parameter 'w' is 'f64'}}
module {
  trainopt.parameter @w trainable : tensor<2x3xf64>
  func.func @forward(%w: tensor<2x3xf64> {trainopt.param = @w}, %x: tensor<4x3xf64> {trainopt.input = "x"}) -> tensor<4x2xf64> {
    %y = trainopt.matmul %x, %w {transpose_rhs = true} : (tensor<4x3xf64>, tensor<2x3xf64>) -> tensor<4x2xf64>
    return %y : tensor<4x2xf64>
  }
}

// -----

// expected-error @+1 {{--amp=bf16: mixed precision starts from an f32 model, but input 'x' is 'f64'}}
module {
  trainopt.parameter @w trainable : tensor<2x3xf32>
  func.func @forward(%w: tensor<2x3xf32> {trainopt.param = @w}, %x: tensor<4x3xf64> {trainopt.input = "x"}) -> tensor<4x2xf32> {
    %xf = trainopt.cast %x : tensor<4x3xf64> to tensor<4x3xf32>
    %y = trainopt.matmul %xf, %w {transpose_rhs = true} : (tensor<4x3xf32>, tensor<2x3xf32>) -> tensor<4x2xf32>
    return %y : tensor<4x2xf32>
  }
}

// -----

// An argument without a name is named by its position.
// expected-error @+1 {{--amp=bf16: mixed precision starts from an f32 model, but input '#1' is 'f16'}}
module {
  func.func @forward(%x: tensor<4x3xf32>, %y: tensor<4x3xf16>) -> tensor<4x3xf32> {
    %yf = trainopt.cast %y : tensor<4x3xf16> to tensor<4x3xf32>
    %z = trainopt.add %x, %yf : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
    return %z : tensor<4x3xf32>
  }
}

// -----

// expected-error @+1 {{trainopt-assign-precision: no function @forward}}
module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}
