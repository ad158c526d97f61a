package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.bf16Round;
import static jdiffusion.tensor.Oracle.symmetric;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Attention with its products in bf16 ({@link Bf16Attention}) against float64 attention.
 *
 * <p><b>Against exact attention on the fp32 inputs.</b> Write u = 2^-9 (bf16's unit roundoff, nearest even). For
 * one query, score j is s_j = scale * sum_e q_e k_je. Rounding q and k to bf16 changes each product by at most
 * (2u + u^2) |q_e k_je|; oneDNN sums the exact bf16 products in fp32 (at most hd * 2^-24 of sum |q k| more), and
 * the fp32 scale and shift add about 2^-22 (|scale s_j| + |scale max|). So each score is off by at most
 * D_j = scale (2^-8 + 2^-17 + hd 2^-24) A_j + 2^-22 (|scale s_j| + |scale max|), A_j = sum_e |q_e k_je|, and with
 * D = max_j D_j the normalised weights w_j = softmax(s)_j change by a factor within e^(+-2D). The unnormalised
 * probabilities are then rounded to bf16 (relative u each) and divided by the sum of the rounded values, a factor
 * within (1 +- u) / (1 -+ u) ~ 1 +- 2u more: |w'_j - w_j| <= eta w_j with eta = e^(2D) (1 + 2u + 2u^2) - 1.
 * Output o = sum_j w_j v_j; with V rounded (relative u) and the fp32 sums of P V and of the probabilities
 * (nk 2^-24 each) plus the final division:
 * |o' - o| <= (eta + u (1 + eta) + (2 nk 2^-24 + 2^-22) (1 + eta) (1 + u)) * sum_j w_j |v_j|, per output value.
 *
 * <p><b>Against float64 on the bf16-rounded inputs</b> (the same arithmetic, exactly): the reference rounds Q, K, V
 * to bf16, computes the scores in float64, exp(scale (s - max)), rounds those to bf16, normalises by their sum and
 * multiplies by V. Ours differs only by fp32 accumulation (scores: hd 2^-24 A~_j; sums: nk 2^-24) and exp's fp32
 * error, a relative g ~ 1e-6 on each unnormalised probability; where that is far from a bf16 rounding midpoint
 * both round the same way, so the bf16 probabilities agree exactly. The few within g of a midpoint may round
 * either way (one bf16 ulp); the bound allows that for exactly those keys, and fp32 accumulation error for the
 * rest: |o' - o~| <= 2 ((sum_amb ulp_j |v~_j| + |o~| sum_amb ulp_j) / S + (nk 2^-24 + 2^-22) (sum_j r_j |v~_j| / S
 * + |o~|)).
 */
class Bf16AttentionTest {

    static Stream<Arguments> cases() {
        // name, batch, heads, nq, nk, hd, causal, bound on the scores of one unit (0: the default)
        return Stream.of(
                Arguments.of("cross b2 h5 300x77 hd64", 2, 5, 300, 77, 64, false, 0),
                Arguments.of("cross b2 h5 300x77 hd64 split rows", 2, 5, 300, 77, 64, false, 77 * 100),
                Arguments.of("self b1 h2 1000x1000 hd40", 1, 2, 1000, 1000, 40, false, 0),
                Arguments.of("self b1 h2 1000x1000 hd40 split rows", 1, 2, 1000, 1000, 40, false, 1000 * 100),
                Arguments.of("causal b2 h3 77x77 hd64", 2, 3, 77, 77, 64, true, 0),
                Arguments.of("causal b1 h2 77x77 hd40 split rows", 1, 2, 77, 77, 40, true, 77 * 20),
                Arguments.of("joint b1 h2 333x333 hd80 odd", 1, 2, 333, 333, 80, false, 0),
                Arguments.of("vae b1 h1 64x64 hd131", 1, 1, 64, 64, 131, false, 0));
    }

    private static float[] rounded(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = bf16Round(x[i]);
        }
        return y;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void withinBoundsOfFloat64(String name, int batch, int heads, int nq, int nk, int hd, boolean causal,
                               int scoreFloats) {
        assumeTrue(OneDnn.usable(), () -> "native bf16 unavailable: " + OneDnn.unavailableReason());
        SplittableRandom r = new SplittableRandom(name.hashCode());
        int c = heads * hd;
        // scores of a few units: a peaked softmax, where the score errors matter most
        float[] q = symmetric(r, batch * nq * c, 1.5);
        float[] k = symmetric(r, batch * nk * c, 1.5);
        float[] v = symmetric(r, batch * nk * c, 2);
        float[] got = scoreFloats == 0 ? Bf16Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal)
                : Bf16Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal, scoreFloats);
        float[] qr = rounded(q);
        float[] kr = rounded(k);
        float[] vr = rounded(v);
        double u = Math.scalb(1.0, -9);
        double f32 = Math.scalb(1.0, -24);
        double scale = 1.0 / Math.sqrt(hd);
        double[] s = new double[nk];
        double[] a = new double[nk];
        double[] sr = new double[nk];
        double[] ar = new double[nk];
        double errSq = 0;
        double refSq = 0;
        double worstRatio = 0;
        double worstRatioRounded = 0;
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < nq; i++) {
                    int visible = causal ? Math.min(nk, i + 1) : nk;
                    int qo = (b * nq + i) * c + h * hd;
                    double max = Double.NEGATIVE_INFINITY;
                    double maxR = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < visible; j++) {
                        int ko = (b * nk + j) * c + h * hd;
                        double d = 0;
                        double ab = 0;
                        double dr = 0;
                        double abr = 0;
                        for (int e = 0; e < hd; e++) {
                            d += (double) q[qo + e] * k[ko + e];
                            ab += Math.abs((double) q[qo + e] * k[ko + e]);
                            dr += (double) qr[qo + e] * kr[ko + e];
                            abr += Math.abs((double) qr[qo + e] * kr[ko + e]);
                        }
                        s[j] = d * scale;
                        a[j] = ab;
                        sr[j] = dr * scale;
                        ar[j] = abr;
                        max = Math.max(max, s[j]);
                        maxR = Math.max(maxR, sr[j]);
                    }
                    // exact attention's weights and the bound's D
                    double dMax = 0;
                    double gMax = 0;
                    double sum = 0;
                    for (int j = 0; j < visible; j++) {
                        dMax = Math.max(dMax, scale * (Math.scalb(1.0, -8) + Math.scalb(1.0, -17) + hd * f32) * a[j]
                                + Math.scalb(1.0, -22) * (Math.abs(s[j]) + Math.abs(max)));
                        gMax = Math.max(gMax, scale * hd * f32 * ar[j]
                                + Math.scalb(1.0, -22) * (Math.abs(sr[j]) + Math.abs(maxR)));
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    double eta = Math.exp(2 * dMax) * (1 + 2 * u + 2 * u * u) - 1;
                    // relative error of our fp32 unnormalised probabilities: score errors of this key and of the max
                    double g = 2 * gMax + 8 * f32;
                    // the reference on rounded inputs: bf16 probabilities, with the keys near a midpoint
                    double sumR = 0;
                    double amb = 0;
                    for (int j = 0; j < visible; j++) {
                        double e = Math.exp(sr[j] - maxR);
                        float re = bf16Round((float) e);
                        double lo = bf16Round((float) (e * (1 - g)));
                        double hi = bf16Round((float) (e * (1 + g)));
                        sr[j] = re;
                        ar[j] = lo != hi ? Math.max(hi - re, re - lo) : 0; // the rounding that may differ
                        amb += ar[j];
                        sumR += re;
                    }
                    for (int e = 0; e < hd; e++) {
                        double o = 0;
                        double w = 0;
                        double or = 0;
                        double wr = 0;
                        double ambV = 0;
                        for (int j = 0; j < visible; j++) {
                            int vo = (b * nk + j) * c + h * hd + e;
                            o += s[j] * v[vo];
                            w += s[j] * Math.abs(v[vo]);
                            or += sr[j] * vr[vo];
                            wr += sr[j] * Math.abs(vr[vo]);
                            ambV += ar[j] * Math.abs(vr[vo]);
                        }
                        final double o1 = o / sum;
                        w /= sum;
                        final double or1 = or / sumR;
                        wr /= sumR;
                        o = o1;
                        or = or1;
                        double y = got[qo + e];
                        double bound = (eta + u * (1 + eta) + (2 * visible * f32 + Math.scalb(1.0, -22)) * (1 + eta)
                                * (1 + u)) * w + 1e-30;
                        assertTrue(Math.abs(y - o) <= bound, () -> name + ": query " + qo + " value " + y
                                + " vs exact " + o1 + " beyond the bf16 bound " + bound);
                        double boundR = 2 * ((ambV + Math.abs(or) * amb) / sumR
                                + (visible * f32 + Math.scalb(1.0, -22)) * (wr + Math.abs(or))) + 1e-30;
                        assertTrue(Math.abs(y - or) <= boundR, () -> name + ": query " + qo + " value " + y
                                + " vs float64 on bf16-rounded inputs " + or1 + " beyond " + boundR);
                        worstRatio = Math.max(worstRatio, Math.abs(y - o) / bound);
                        worstRatioRounded = Math.max(worstRatioRounded, Math.abs(y - or) / boundR);
                        errSq += (y - o) * (y - o);
                        refSq += o * o;
                    }
                }
            }
        }
        double rel = Math.sqrt(errSq / refSq);
        System.out.printf("%s: bf16 attention relative L2 error %.2e vs exact; worst error / bound %.3f (exact), "
                + "%.3f (bf16-rounded inputs)%n", name, rel, worstRatio, worstRatioRounded);
        assertTrue(rel > 0, "bf16 rounding must show (the native path ran)");
        assertTrue(rel < 4 * u, "relative L2 error " + rel + " is not that of bf16 products");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void fp32PathUnchanged(String name, int batch, int heads, int nq, int nk, int hd, boolean causal,
                           int scoreFloats) {
        SplittableRandom r = new SplittableRandom(name.hashCode() + 1);
        int c = heads * hd;
        float[] q = symmetric(r, batch * nq * c, 1.5);
        float[] k = symmetric(r, batch * nk * c, 1.5);
        float[] v = symmetric(r, batch * nk * c, 2);
        // the streaming fp32 kernel with its own block sizes is what fp32 always computed
        float[] fp32 = Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal, Attention.QB, Attention.KB);
        assertArrayEquals(fp32, Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal, false), "bf16 off");
        assertArrayEquals(fp32, Ops.attention(q, k, v, batch, nq, nk, heads, hd, causal), "default precision fp32");
        if (hd < Attention.BF16_MIN_HEAD) {
            assertArrayEquals(fp32, Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal, true),
                    "heads narrower than " + Attention.BF16_MIN_HEAD + " stay on the fp32 kernel");
        }
        String before = System.getProperty("jdiffusion.bf16.attention");
        System.setProperty("jdiffusion.bf16.attention", "off");
        try {
            assertArrayEquals(fp32, Ops.attention(q, k, v, batch, nq, nk, heads, hd, causal, true),
                    "-Djdiffusion.bf16.attention=off keeps attention in fp32");
        } finally {
            SystemProperties.restore("jdiffusion.bf16.attention", before);
        }
    }

    @Test
    void manyShapesOutliveThePrimitiveCache() {
        assumeTrue(OneDnn.usable(), () -> "native bf16 unavailable: " + OneDnn.unavailableReason());
        SplittableRandom r = new SplittableRandom(5);
        // more query counts than a thread keeps primitives for (one head, one unit: all on this thread): the cache
        // starts over and the results stay right
        for (int nq = 1; nq <= 80; nq++) {
            float[] q = symmetric(r, nq * 16, 1);
            float[] k = symmetric(r, 9 * 16, 1);
            float[] v = symmetric(r, 9 * 16, 1);
            float[] got = Bf16Attention.forward(q, k, v, 1, nq, 9, 1, 16, nq % 2 == 0);
            float[] ref = Reference.attention(q, k, v, 1, nq, 9, 1, 16, nq % 2 == 0);
            for (int i = 0; i < ref.length; i++) {
                // scores within 2^-8 * 16 / 4 = 1/64: weights within ~3.2%, plus V's and P's rounding; |v| <= 1
                assertEquals(ref[i], got[i], 0.05, "nq " + nq + " value " + i);
            }
        }
    }
}
