package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/**
 * Inference at full size, from names and shapes only (no tensor data is read): the LDM/SGM layouts of SD1.5,
 * SD2.1 and SDXL base, laid out as the public checkpoints name their UNet tensors, give the published configs.
 * Guards against anything tuned to the tiny models (depth 10 blocks, 3 levels, 1280-wide transformers).
 */
class UNetConfigFullSizeTest {

    /** LDM UNet tensor names and shapes for an architecture (weights and biases; shapes as in real checkpoints). */
    private static final class Layout {
        final Map<String, int[]> shapes = new LinkedHashMap<>();
        final int ted;
        final int ctx;
        final boolean linear;

        Layout(int mc, int[] mult, int numRes, int[] depth, int middleDepth, int ctx, boolean linear, int adm) {
            this.ted = 4 * mc;
            this.ctx = ctx;
            this.linear = linear;
            conv("input_blocks.0.0", mc, 4, 3);
            lin("time_embed.0", ted, mc);
            lin("time_embed.2", ted, ted);
            if (adm > 0) {
                lin("label_emb.0.0", ted, adm);
                lin("label_emb.0.2", ted, ted);
            }
            java.util.ArrayDeque<Integer> skips = new java.util.ArrayDeque<>();
            skips.push(mc);
            int ch = mc;
            int b = 1;
            for (int level = 0; level < mult.length; level++) {
                for (int j = 0; j < numRes; j++, b++) {
                    res("input_blocks." + b + ".0", ch, mc * mult[level]);
                    ch = mc * mult[level];
                    if (depth[level] > 0) {
                        transformer("input_blocks." + b + ".1", ch, depth[level]);
                    }
                    skips.push(ch);
                }
                if (level < mult.length - 1) {
                    conv("input_blocks." + b + ".0.op", ch, ch, 3);
                    skips.push(ch);
                    b++;
                }
            }
            res("middle_block.0", ch, ch);
            transformer("middle_block.1", ch, middleDepth);
            res("middle_block.2", ch, ch);
            int k = 0;
            for (int level = mult.length - 1; level >= 0; level--) {
                for (int j = 0; j <= numRes; j++, k++) {
                    res("output_blocks." + k + ".0", ch + skips.pop(), mc * mult[level]);
                    ch = mc * mult[level];
                    int sub = 1;
                    if (depth[level] > 0) {
                        transformer("output_blocks." + k + ".1", ch, depth[level]);
                        sub++;
                    }
                    if (level > 0 && j == numRes) {
                        conv("output_blocks." + k + "." + sub + ".conv", ch, ch, 3);
                    }
                }
            }
            vec("out.0", mc);
            conv("out.2", 4, mc, 3);
        }

        void vec(String p, int n) {
            shapes.put(p + ".weight", new int[] {n});
            shapes.put(p + ".bias", new int[] {n});
        }

        void lin(String p, int out, int in) {
            shapes.put(p + ".weight", new int[] {out, in});
            shapes.put(p + ".bias", new int[] {out});
        }

        void conv(String p, int out, int in, int k) {
            shapes.put(p + ".weight", new int[] {out, in, k, k});
            shapes.put(p + ".bias", new int[] {out});
        }

        void res(String p, int in, int out) {
            vec(p + ".in_layers.0", in);
            conv(p + ".in_layers.2", out, in, 3);
            lin(p + ".emb_layers.1", out, ted);
            vec(p + ".out_layers.0", out);
            conv(p + ".out_layers.3", out, out, 3);
            if (in != out) {
                conv(p + ".skip_connection", out, in, 1);
            }
        }

        void transformer(String p, int ch, int depth) {
            vec(p + ".norm", ch);
            if (linear) {
                lin(p + ".proj_in", ch, ch);
                lin(p + ".proj_out", ch, ch);
            } else {
                conv(p + ".proj_in", ch, ch, 1);
                conv(p + ".proj_out", ch, ch, 1);
            }
            for (int d = 0; d < depth; d++) {
                String t = p + ".transformer_blocks." + d;
                for (String a : new String[] {"attn1", "attn2"}) {
                    int kv = a.equals("attn1") ? ch : ctx;
                    shapes.put(t + "." + a + ".to_q.weight", new int[] {ch, ch});
                    shapes.put(t + "." + a + ".to_k.weight", new int[] {ch, kv});
                    shapes.put(t + "." + a + ".to_v.weight", new int[] {ch, kv});
                    lin(t + "." + a + ".to_out.0", ch, ch);
                }
                vec(t + ".norm1", ch);
                vec(t + ".norm2", ch);
                vec(t + ".norm3", ch);
                lin(t + ".ff.net.0.proj", 8 * ch, ch);
                lin(t + ".ff.net.2", ch, 4 * ch);
            }
        }

        Weights weights() {
            return new Weights() {
                @Override
                public Set<String> names() {
                    return shapes.keySet();
                }

                @Override
                public boolean has(String name) {
                    return shapes.containsKey(name);
                }

                @Override
                public int[] shape(String name) {
                    return shapes.get(name);
                }

                @Override
                public float[] get(String name) {
                    throw new AssertionError("config inference must not read tensor data (" + name + ")");
                }
            };
        }
    }

    @Test
    void sd15() throws Exception {
        UNetConfig c = UNetConfig.infer(new Layout(320, new int[] {1, 2, 4, 4}, 2, new int[] {1, 1, 1, 0}, 1, 768,
                false, 0).weights());
        assertEquals(320, c.modelChannels());
        assertArrayEquals(new int[] {1, 2, 4, 4}, c.channelMult());
        assertEquals(2, c.numResBlocks());
        assertArrayEquals(new int[] {1, 1, 1, 1, 1, 1, 0, 0}, c.inputDepth());
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, c.outputDepth());
        assertEquals(1, c.middleDepth());
        assertEquals(768, c.contextDim());
        assertFalse(c.linearProj());
        assertEquals(1280, c.timeEmbedDim());
        assertEquals(0, c.admInChannels());
        assertEquals(8, c.headsRule().heads(320));
        assertEquals(8, c.headsRule().heads(1280));
    }

    @Test
    void sd21() throws Exception {
        UNetConfig c = UNetConfig.infer(new Layout(320, new int[] {1, 2, 4, 4}, 2, new int[] {1, 1, 1, 0}, 1, 1024,
                true, 0).weights());
        assertArrayEquals(new int[] {1, 2, 4, 4}, c.channelMult());
        assertEquals(1024, c.contextDim());
        assertTrue(c.linearProj());
        assertEquals(5, c.headsRule().heads(320));
        assertEquals(20, c.headsRule().heads(1280));
        assertEquals(1, c.headsRule().heads(32), "narrower than a head: one head");
    }

    @Test
    void sdxlBase() throws Exception {
        UNetConfig c = UNetConfig.infer(new Layout(320, new int[] {1, 2, 4}, 2, new int[] {0, 2, 10}, 10, 2048, true,
                2816).weights());
        assertArrayEquals(new int[] {1, 2, 4}, c.channelMult());
        assertArrayEquals(new int[] {0, 0, 2, 2, 10, 10}, c.inputDepth());
        assertArrayEquals(new int[] {10, 10, 10, 2, 2, 2, 0, 0, 0}, c.outputDepth());
        assertEquals(10, c.middleDepth());
        assertEquals(2048, c.contextDim());
        assertEquals(2816, c.admInChannels());
        assertEquals(1280, c.timeEmbedDim());
        assertEquals(10, c.headsRule().heads(640));
        assertEquals(20, c.headsRule().heads(1280));
    }
}
