package jdiffusion.model;

import java.lang.foreign.MemorySegment;
import jdiffusion.io.DType;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.WeightFormat;

/** How every model family's layers keep the weights they read from a {@link Weights} view. */
public final class LayerWeights {
    private LayerWeights() {
    }

    /**
     * How a layer keeps its weights: in the 16 (or 8) bits the file stores them in (widening fp16/bf16/fp8 to
     * float32 and back loses nothing, and halves the model's memory), float32 otherwise.
     */
    public static WeightFormat storage(DType t) {
        return switch (t) {
            case F16 -> WeightFormat.F16;
            case BF16 -> WeightFormat.BF16;
            case F8_E4M3 -> WeightFormat.F8_E4M3;
            case F8_E5M2 -> WeightFormat.F8_E5M2;
            default -> WeightFormat.F32;
        };
    }

    /**
     * A linear layer over tensor wn ([out][in], shape already checked by the caller): its weights left in the
     * mapped file, read at each call in their stored width ({@link Linear#mapped}), where the view maps one, the
     * width is one the kernels read (not F64 and the like) and {@link Linear#mappedWeights()} allows it; else packed
     * at load in their stored width ({@link Linear#of}).
     */
    public static Linear linear(Weights w, String wn, float[] bias, int out, int in) {
        DType t = w.dtype(wn);
        WeightFormat format = storage(t);
        boolean readable = format != WeightFormat.F32 || t == DType.F32;
        MemorySegment mapped = readable && Linear.mappedWeights() ? w.mapped(wn) : null;
        return mapped != null ? Linear.mapped(mapped, format, bias, out, in)
                : Linear.of(w.get(wn), bias, out, in, format);
    }
}
