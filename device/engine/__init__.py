"""The int8 engine: the arithmetic, the validated graph, the bundle format, the kernels (a reference beside the faster plans), the engines that run them and the C kernel's glue."""
