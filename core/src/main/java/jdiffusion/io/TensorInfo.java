package jdiffusion.io;

import java.util.Arrays;

/** One tensor's entry in a safetensors header: dtype, shape and byte range inside the data section. */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public int rank() {
        return shape.length;
    }

    /** Shape as ints (every dimension of a real model fits an int). */
    public int[] dims() {
        int[] d = new int[shape.length];
        for (int i = 0; i < d.length; i++) {
            if (shape[i] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("tensor '" + name + "' has dimension " + i + " of " + shape[i]
                        + ", more than 2^31 - 1");
            }
            d[i] = (int) shape[i];
        }
        return d;
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
