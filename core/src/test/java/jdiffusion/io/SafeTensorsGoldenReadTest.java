package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdiffusion.Golden;
import org.junit.jupiter.api.Test;

class SafeTensorsGoldenReadTest {
    @Test
    void readsTheTinySd1CheckpointHeaderAndAnF16Tensor() throws Exception {
        try (SafeTensors st = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            assertEquals(983, st.names().size());
            TensorInfo pos = st.info("cond_stage_model.transformer.text_model.embeddings.position_ids");
            assertEquals(DType.I64, pos.dtype());
            long[] ids = st.longs(pos.name());
            for (int i = 0; i < ids.length; i++) {
                assertEquals(i, ids[i]);
            }
            TensorInfo w = st.info("model.diffusion_model.input_blocks.0.0.weight");
            assertEquals(DType.F16, w.dtype());
            float[] f = st.floats(w.name());
            assertEquals(w.numel(), f.length);
            double sq = 0;
            for (float v : f) {
                sq += v * v;
            }
            assertTrue(sq > 0, "conv_in weights are random, not zero");
        }
    }
}
