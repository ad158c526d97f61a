package jdiffusion.model;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.tensor.Ops;

/**
 * What a ControlNet hands the UNet: one residual per skip connection (in the order the encoder makes them: conv_in's
 * output first) and one for the middle block's output, already multiplied by the strength. NHWC like the UNet's
 * activations; {@link FeatureMap#nchw()} gives the reference layout.
 */
public record ControlResiduals(List<FeatureMap> down, FeatureMap mid) {

    /** One feature map, NHWC [batch][h][w][c]. */
    public record FeatureMap(float[] data, int batch, int h, int w, int c) {
        public FeatureMap {
            if (data.length != (long) batch * h * w * c) {
                throw new IllegalArgumentException("residual holds " + data.length + " values, expected " + batch + "x"
                        + h + "x" + w + "x" + c);
            }
        }

        /** The same values NCHW [batch][c][h][w]. */
        public float[] nchw() {
            return Ops.nhwcToNchw(data, batch, c, h, w);
        }

        FeatureMap plus(FeatureMap o) {
            if (o.batch != batch || o.h != h || o.w != w || o.c != c) {
                throw new IllegalArgumentException("cannot add a " + o.shape() + " residual to a " + shape() + " one");
            }
            float[] sum = data.clone();
            Ops.addInPlace(sum, o.data);
            return new FeatureMap(sum, batch, h, w, c);
        }

        String shape() {
            return batch + "x" + h + "x" + w + "x" + c;
        }
    }

    public ControlResiduals {
        down = List.copyOf(down);
    }

    /** The residuals of two ControlNets applied together: their sum (ComfyUI chains them, diffusers sums them). */
    public ControlResiduals plus(ControlResiduals o) {
        if (o.down.size() != down.size()) {
            throw new IllegalArgumentException("cannot add " + o.down.size() + " skip residuals to " + down.size()
                    + " (ControlNets for different UNets?)");
        }
        List<FeatureMap> sum = new ArrayList<>();
        for (int i = 0; i < down.size(); i++) {
            sum.add(down.get(i).plus(o.down.get(i)));
        }
        return new ControlResiduals(sum, mid.plus(o.mid));
    }

    /**
     * The rows of two batches one after the other ([first rows, second rows], as CFG batches [uncond, cond]); a null
     * side (no control for those rows) contributes zeros. Null when both are.
     */
    public static ControlResiduals stackRows(ControlResiduals first, int firstRows, ControlResiduals second,
            int secondRows) {
        if (first == null && second == null) {
            return null;
        }
        ControlResiduals shape = first != null ? first : second;
        List<FeatureMap> down = new ArrayList<>();
        for (int i = 0; i < shape.down.size(); i++) {
            down.add(stack(first == null ? null : first.down.get(i), firstRows, second == null ? null
                    : second.down.get(i), secondRows, shape.down.get(i)));
        }
        return new ControlResiduals(down, stack(first == null ? null : first.mid, firstRows,
                second == null ? null : second.mid, secondRows, shape.mid));
    }

    private static FeatureMap stack(FeatureMap a, int rowsA, FeatureMap b, int rowsB, FeatureMap shape) {
        int per = shape.h * shape.w * shape.c;
        float[] out = new float[(rowsA + rowsB) * per];
        if (a != null) {
            System.arraycopy(a.data, 0, out, 0, rowsA * per);
        }
        if (b != null) {
            System.arraycopy(b.data, 0, out, rowsA * per, rowsB * per);
        }
        return new FeatureMap(out, rowsA + rowsB, shape.h, shape.w, shape.c);
    }

    /** a + b where either may be null (no control). */
    public static ControlResiduals sum(ControlResiduals a, ControlResiduals b) {
        return a == null ? b : b == null ? a : a.plus(b);
    }
}
