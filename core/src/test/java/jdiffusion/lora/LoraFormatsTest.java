package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PEFT, diffusers, LoHa, LoKr and LoCon-with-mid files built here, applied to the tiny SD1 checkpoint, each patched
 * weight compared with its formula computed here in double: LoRA up@down, LoHa (w1a@w1b)*(w2a@w2b) (and its Tucker
 * form), LoKr kron(w1, w2), times strength and the format's alpha rule.
 */
class LoraFormatsTest {
    private static SafeTensors ckpt;
    private static ModelComponents sd1;

    @TempDir
    Path dir;

    @BeforeAll
    static void openBase() throws Exception {
        ckpt = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"));
        sd1 = GoldenModels.components(ckpt);
    }

    @AfterAll
    static void closeBase() {
        ckpt.close();
    }

    @Test
    void peftAndDiffusersNamesMapOntoLdmNames() throws Exception {
        var b = new TestTensors.Builder(1);
        float[] qA = b.random("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", 4, 64);
        float[] qB = b.random("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", 64, 4);
        float[] upA = b.random("unet.up_blocks.0.upsamplers.0.conv.lora_A.weight", 4, 128, 3, 3);
        float[] upB = b.random("unet.up_blocks.0.upsamplers.0.conv.lora_B.weight", 128, 4, 1, 1);
        b.scalar("unet.up_blocks.0.upsamplers.0.conv.alpha", 2f);
        float[] fcA = b.random("text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_A.weight", 2, 64);
        float[] fcB = b.random("text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_B.weight", 256, 2);
        float[] kD = b.random("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight", 4, 64);
        float[] kU = b.random("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora.up.weight", 128, 4);
        float[] oD = b.random("unet.down_blocks.2.attentions.1.transformer_blocks.0.attn1.processor.to_out_lora.down.weight", 4, 128);
        float[] oU = b.random("unet.down_blocks.2.attentions.1.transformer_blocks.0.attn1.processor.to_out_lora.up.weight", 128, 4);
        float s = 0.75f;
        try (LoraFile lora = LoraFile.open(b.write(dir.resolve("peft.safetensors")))) {
            LoraMatch match = LoraMatch.of(lora, sd1);
            assertEquals(Map.of(Component.UNET, 4, Component.TE1, 1, Component.TE2, 0), match.report().modulesApplied());
            assertEquals(List.of(), match.report().unusedKeys());
            ModelComponents p = match.applyTo(sd1, s, s);
            expect(p.unet(), sd1.unet(), "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight", s, TestTensors.matmul(qB, qA, 64, 4, 64));
            expect(p.unet(), sd1.unet(), "output_blocks.2.1.conv.weight", s * 0.5, TestTensors.matmul(upB, upA, 128, 4, 128 * 9));
            expect(p.te1(), sd1.te1(), "text_model.encoder.layers.1.mlp.fc1.weight", s, TestTensors.matmul(fcB, fcA, 256, 2, 64));
            expect(p.unet(), sd1.unet(), "middle_block.1.transformer_blocks.0.attn2.to_k.weight", s, TestTensors.matmul(kU, kD, 128, 4, 64));
            expect(p.unet(), sd1.unet(), "input_blocks.8.1.transformer_blocks.0.attn1.to_out.0.weight", s, TestTensors.matmul(oU, oD, 128, 4, 128));
            assertEquals("PEFT LoRA + diffusers LoRA", LoraInfo.describe(lora.safetensors()).format());
        }
    }

    @Test
    void lohaIsTheHadamardProductOfTwoLowRankProducts() throws Exception {
        var b = new TestTensors.Builder(2);
        String conv = "lora_unet_down_blocks_0_resnets_0_conv1";
        float[] c1a = b.random(conv + ".hada_w1_a", 32, 4);
        float[] c1b = b.random(conv + ".hada_w1_b", 4, 32 * 9);
        float[] c2a = b.random(conv + ".hada_w2_a", 32, 4);
        float[] c2b = b.random(conv + ".hada_w2_b", 4, 32 * 9);
        b.scalar(conv + ".alpha", 2f);
        String lin = "lora_te_text_model_encoder_layers_0_self_attn_v_proj";
        float[] l1a = b.random(lin + ".hada_w1_a", 64, 2);
        float[] l1b = b.random(lin + ".hada_w1_b", 2, 64);
        float[] l2a = b.random(lin + ".hada_w2_a", 64, 2);
        float[] l2b = b.random(lin + ".hada_w2_b", 2, 64);
        String tucker = "lora_unet_down_blocks_1_resnets_0_conv2";
        float[] t1 = b.random(tucker + ".hada_t1", 3, 3, 3, 3);
        float[] t1a = b.random(tucker + ".hada_w1_a", 3, 64);
        float[] t1b = b.random(tucker + ".hada_w1_b", 3, 64);
        float[] t2 = b.random(tucker + ".hada_t2", 3, 3, 3, 3);
        float[] t2a = b.random(tucker + ".hada_w2_a", 3, 64);
        float[] t2b = b.random(tucker + ".hada_w2_b", 3, 64);
        b.scalar(tucker + ".alpha", 3f);
        float s = 1.3f;
        try (LoraFile lora = LoraFile.open(b.write(dir.resolve("loha.safetensors")))) {
            ModelComponents p = LoraMatch.of(lora, sd1).applyTo(sd1, s, s);
            expect(p.unet(), sd1.unet(), "input_blocks.1.0.in_layers.2.weight", s * 2 / 4.0,
                    hadamard(TestTensors.matmul(c1a, c1b, 32, 4, 288), TestTensors.matmul(c2a, c2b, 32, 4, 288)));
            expect(p.te1(), sd1.te1(), "text_model.encoder.layers.0.self_attn.v_proj.weight", s,
                    hadamard(TestTensors.matmul(l1a, l1b, 64, 2, 64), TestTensors.matmul(l2a, l2b, 64, 2, 64)));
            expect(p.unet(), sd1.unet(), "input_blocks.4.0.out_layers.3.weight", s,
                    hadamard(tuckerRebuild(t1, t1b, t1a), tuckerRebuild(t2, t2b, t2a)));
            LoraInfo info = LoraInfo.describe(lora.safetensors());
            assertEquals("LyCORIS LoHa", info.format());
            assertEquals(List.of(2, 3, 4), List.copyOf(info.ranks()));
            assertEquals(1, info.missingAlpha());
        }
    }

    @Test
    void lokrIsTheKroneckerProduct() throws Exception {
        var b = new TestTensors.Builder(3);
        String full = "lora_te_text_model_encoder_layers_2_self_attn_q_proj";
        float[] fw1 = b.random(full + ".lokr_w1", 8, 8);
        float[] fw2 = b.random(full + ".lokr_w2", 8, 8);
        b.scalar(full + ".alpha", 4f); // no low-rank factor: alpha is not used
        String dec = "lora_te_text_model_encoder_layers_2_mlp_fc1";
        float[] dw1 = b.random(dec + ".lokr_w1", 16, 4);
        float[] dw2a = b.random(dec + ".lokr_w2_a", 16, 2);
        float[] dw2b = b.random(dec + ".lokr_w2_b", 2, 16);
        b.scalar(dec + ".alpha", 1f);
        String conv = "lora_unet_up_blocks_1_resnets_2_conv1";
        float[] cw1 = b.random(conv + ".lokr_w1", 8, 12);
        float[] cw2 = b.random(conv + ".lokr_w2", 16, 16, 3, 3);
        float s = 0.6f;
        try (LoraFile lora = LoraFile.open(b.write(dir.resolve("lokr.safetensors")))) {
            ModelComponents p = LoraMatch.of(lora, sd1).applyTo(sd1, s, s);
            expect(p.te1(), sd1.te1(), "text_model.encoder.layers.2.self_attn.q_proj.weight", s, kron4(fw1, 8, 8, fw2, 8, 8, 1));
            double[] w2 = TestTensors.matmul(dw2a, dw2b, 16, 2, 16);
            float[] w2f = new float[w2.length];
            for (int i = 0; i < w2.length; i++) {
                w2f[i] = (float) w2[i];
            }
            expect(p.te1(), sd1.te1(), "text_model.encoder.layers.2.mlp.fc1.weight", s * 0.5, kron4(dw1, 16, 4, w2f, 16, 16, 1));
            expect(p.unet(), sd1.unet(), "output_blocks.5.0.in_layers.2.weight", s, kron4(cw1, 8, 12, cw2, 16, 16, 9));
        }
    }

    @Test
    void kohyaWithoutAlphaUsesAlphaEqualRankAndLoconMidIsContracted() throws Exception {
        var b = new TestTensors.Builder(4);
        String proj = "lora_unet_down_blocks_0_attentions_0_proj_in";
        float[] pd = b.random(proj + ".lora_down.weight", 4, 32, 1, 1);
        float[] pu = b.random(proj + ".lora_up.weight", 32, 4, 1, 1);
        String op = "lora_unet_down_blocks_0_downsamplers_0_conv";
        float[] od = b.random(op + ".lora_down.weight", 4, 32, 1, 1);
        float[] om = b.random(op + ".lora_mid.weight", 4, 4, 3, 3);
        float[] ou = b.random(op + ".lora_up.weight", 32, 4, 1, 1);
        b.scalar(op + ".alpha", 4f);
        try (LoraFile lora = LoraFile.open(b.write(dir.resolve("locon.safetensors")))) {
            ModelComponents p = LoraMatch.of(lora, sd1).applyTo(sd1, 0.9f, 0.9f);
            expect(p.unet(), sd1.unet(), "input_blocks.1.1.proj_in.weight", 0.9, TestTensors.matmul(pu, pd, 32, 4, 32));
            double[] delta = new double[32 * 32 * 9];
            for (int o = 0; o < 32; o++) {
                for (int c = 0; c < 32; c++) {
                    for (int k = 0; k < 9; k++) {
                        double acc = 0;
                        for (int i = 0; i < 4; i++) {
                            for (int j = 0; j < 4; j++) {
                                acc += (double) ou[o * 4 + i] * om[(i * 4 + j) * 9 + k] * od[j * 32 + c];
                            }
                        }
                        delta[(o * 32 + c) * 9 + k] = acc;
                    }
                }
            }
            expect(p.unet(), sd1.unet(), "input_blocks.3.0.op.weight", 0.9, delta);
        }
    }

    private static void expect(Weights patched, Weights base, String tensor, double factor, double[] delta) {
        double misfit = TestTensors.misfit(patched.get(tensor), base.get(tensor), factor, delta);
        assertTrue(misfit <= 1, tensor + ": off by " + misfit + "x the tolerance");
        assertTrue(misfit(base.get(tensor), base.get(tensor), factor, delta) > 1, tensor + ": the change must be visible");
    }

    private static double misfit(float[] got, float[] base, double factor, double[] delta) {
        return TestTensors.misfit(got, base, factor, delta);
    }

    private static double[] hadamard(double[] a, double[] b) {
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i] * b[i];
        }
        return out;
    }

    /** einsum("i j k l, j r, i p -> p r k l", t [3,3,3,3], wb [3,64], wa [3,64]) as [64, 64*9]. */
    private static double[] tuckerRebuild(float[] t, float[] wb, float[] wa) {
        double[] out = new double[64 * 64 * 9];
        for (int p = 0; p < 64; p++) {
            for (int r = 0; r < 64; r++) {
                for (int kl = 0; kl < 9; kl++) {
                    double acc = 0;
                    for (int i = 0; i < 3; i++) {
                        for (int j = 0; j < 3; j++) {
                            acc += (double) t[(i * 3 + j) * 9 + kl] * wb[j * 64 + r] * wa[i * 64 + p];
                        }
                    }
                    out[(p * 64 + r) * 9 + kl] = acc;
                }
            }
        }
        return out;
    }

    /**
     * torch.kron(w1[:, :, None, None], w2) for w1 [a1,b1] and w2 [a2,b2,kh,kw] (spatial = kh*kw, 1 for matrices),
     * flattened to [a1*a2, b1*b2*spatial] in [out, in, kh, kw] order.
     */
    private static double[] kron4(float[] w1, int a1, int b1, float[] w2, int a2, int b2, int spatial) {
        int in = b1 * b2;
        double[] out = new double[a1 * a2 * in * spatial];
        for (int i1 = 0; i1 < a1; i1++) {
            for (int i2 = 0; i2 < a2; i2++) {
                for (int j1 = 0; j1 < b1; j1++) {
                    for (int j2 = 0; j2 < b2; j2++) {
                        for (int k = 0; k < spatial; k++) {
                            int o = i1 * a2 + i2;
                            int c = j1 * b2 + j2;
                            out[(o * in + c) * spatial + k] = (double) w1[i1 * b1 + j1] * w2[(i2 * b2 + j2) * spatial + k];
                        }
                    }
                }
            }
        }
        return out;
    }

    @Test
    void unchangedTensorsAreTheBaseValues() throws Exception {
        var b = new TestTensors.Builder(5);
        b.random("lora_unet_down_blocks_0_attentions_0_proj_out.lora_down.weight", 4, 32, 1, 1);
        b.random("lora_unet_down_blocks_0_attentions_0_proj_out.lora_up.weight", 32, 4, 1, 1);
        try (LoraFile lora = LoraFile.open(b.write(dir.resolve("one.safetensors")))) {
            LoraWeights w = LoraWeights.over(sd1.unet(), LoraMatch.of(lora, sd1).patches(Component.UNET), 1f);
            assertEquals(java.util.Set.of("input_blocks.1.1.proj_out.weight"), w.patchedNames());
            assertArrayEquals(sd1.unet().get("input_blocks.1.1.proj_in.weight"), w.get("input_blocks.1.1.proj_in.weight"));
            assertArrayEquals(sd1.unet().get("input_blocks.1.1.proj_out.bias"), w.get("input_blocks.1.1.proj_out.bias"));
        }
    }
}
