package jdiffusion.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * A convolution on oneDNN's bf16 convolution primitive, NHWC in and out (no im2col): weights [out][in][kh][kw] stored
 * as bf16 (packed once in the layout the primitive picks), input rounded to bf16 per call, fp32 accumulation and
 * output, bias added by the primitive. One primitive per input shape.
 */
final class Bf16Conv {
    private final int out;
    private final int in;
    private final int kh;
    private final int kw;
    private final int stride;
    private final int padTop;
    private final int padLeft;
    private final int padBottom;
    private final int padRight;
    private final NativeWeights weights;
    private final MemorySegment bias;
    private final MemorySegment biasMd;
    private final NativeWeights.Prims<List<Integer>, NativeWeights.Prim> prims = new NativeWeights.Prims<>();

    Bf16Conv(float[] weight, float[] bias, int out, int in, int kh, int kw, int stride, int padTop, int padLeft,
             int padBottom, int padRight) {
        this.out = out;
        this.in = in;
        this.kh = kh;
        this.kw = kw;
        this.stride = stride;
        this.padTop = padTop;
        this.padLeft = padLeft;
        this.padBottom = padBottom;
        this.padRight = padRight;
        this.weights = new NativeWeights(weight, new long[] {out, in, kh, kw}, OneDnn.TAG_ABCD);
        if (bias != null) {
            this.bias = Arena.ofAuto().allocate(4L * out, 64);
            MemorySegment.copy(bias, 0, this.bias, ValueLayout.JAVA_FLOAT, 0, out);
            this.biasMd = weights.natives.md(OneDnn.md(new long[] {out}, OneDnn.F32, OneDnn.TAG_A));
        } else {
            this.bias = null;
            this.biasMd = MemorySegment.NULL;
        }
        NativeWeights.CLEANER.register(this, weights.natives);
    }

    long bytes() {
        return weights.bytes() + (bias == null ? 0 : bias.byteSize());
    }

    private NativeWeights.Prim prim(int batch, int h, int w, int oh, int ow) {
        return prims.get(List.of(batch, h, w), key -> {
            NativeWeights.Natives n = weights.natives;
            MemorySegment src = n.md(OneDnn.md(new long[] {batch, in, h, w}, OneDnn.BF16, OneDnn.TAG_ACDB));
            MemorySegment any = OneDnn.md(new long[] {out, in, kh, kw}, OneDnn.BF16, OneDnn.TAG_ANY);
            MemorySegment dst = n.md(OneDnn.md(new long[] {batch, out, oh, ow}, OneDnn.F32, OneDnn.TAG_ACDB));
            return weights.primitive(src, any, dst, "bf16 convolution " + batch + "x" + h + "x" + w + "x" + in
                    + " -> " + out + " k" + kh + "x" + kw + " s" + stride, (a, pd) -> {
                        MemorySegment strides = a.allocateFrom(ValueLayout.JAVA_LONG, stride, stride);
                        MemorySegment dilates = a.allocateFrom(ValueLayout.JAVA_LONG, 0, 0);
                        MemorySegment padL = a.allocateFrom(ValueLayout.JAVA_LONG, padTop, padLeft);
                        MemorySegment padR = a.allocateFrom(ValueLayout.JAVA_LONG, padBottom, padRight);
                        return (int) OneDnn.api().convPd().invokeExact(pd, OneDnn.engine(), OneDnn.FORWARD_INFERENCE,
                                OneDnn.CONVOLUTION_DIRECT, src, any, biasMd, dst, strides, dilates, padL, padR,
                                MemorySegment.NULL);
                    });
        });
    }

    /** x is [batch][h][w][in]; y [batch][oh][ow][out] is written. */
    void forward(float[] x, int batch, int h, int w, int oh, int ow, float[] y) {
        NativeWeights.Prim p = prim(batch, h, w, oh, ow);
        NativeWeights.Scratch s = NativeWeights.Scratch.get();
        long n = (long) batch * h * w * in;
        MemorySegment src = s.src(2L * n);
        MemorySegment dst = s.dst(4L * batch * oh * ow * out);
        int chunk = 1 << 16;
        int chunks = (int) ((n + chunk - 1) / chunk);
        Parallel.forRange(chunks, c -> {
            int i0 = c * chunk;
            OneDnn.toBf16(x, i0, src, 2L * i0, (int) Math.min(chunk, n - i0));
        });
        if (bias != null) {
            OneDnn.execute(p.primitive(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_BIAS, OneDnn.ARG_DST},
                    new MemorySegment[] {p.srcMd(), p.weightsMd(), biasMd, p.dstMd()},
                    new MemorySegment[] {src, p.weights(), bias, dst});
        } else {
            OneDnn.execute(p.primitive(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                    new MemorySegment[] {p.srcMd(), p.weightsMd(), p.dstMd()}, new MemorySegment[] {src, p.weights(), dst});
        }
        Bf16Linear.copyOut(dst, batch * oh * ow, out, y, 0, out, false);
    }
}
