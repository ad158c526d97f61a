package jdiffusion.lora;

/**
 * Where a module's weight change lands: a component tensor (canonical name) or, for OpenCLIP's fused
 * {@code in_proj_weight}, the rows [rowOffset, rowOffset + rows) of it. cols = elements per row.
 */
public record LoraTarget(String tensor, int rowOffset, int rows, int cols) {
}
