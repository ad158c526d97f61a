package jdiffusion.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.SafeTensors;

/**
 * Test helper: writes the float tensors of a file whose names start with prefix as an F32 safetensors file (the
 * fp32 twin of the fp16 tiny checkpoints, which the golden folder does not ship), so the F32 loading path is tested.
 */
final class F32Copy {
    private F32Copy() {
    }

    static Path write(SafeTensors src, String prefix, Path out) throws IOException {
        return write(src, prefix, prefix, out);
    }

    /** As {@link #write(SafeTensors, String, Path)}, renaming the prefix to newPrefix (e.g. to fake another layout). */
    static Path write(SafeTensors src, String prefix, String newPrefix, Path out) throws IOException {
        List<String> names = new ArrayList<>();
        for (String n : src.names()) {
            if (n.startsWith(prefix) && !src.info(n).dtype().name().startsWith("I")) {
                names.add(n);
            }
        }
        ObjectNode header = new ObjectMapper().createObjectNode();
        long offset = 0;
        for (String n : names) {
            long bytes = 4L * src.floats(n).length;
            ObjectNode t = header.putObject(newPrefix + n.substring(prefix.length()));
            t.put("dtype", "F32");
            var shape = t.putArray("shape");
            for (int d : src.info(n).dims()) {
                shape.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = new ObjectMapper().writeValueAsBytes(header);
        try (OutputStream os = Files.newOutputStream(out)) {
            os.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length).array());
            os.write(json);
            for (String n : names) {
                float[] v = src.floats(n);
                ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
                b.asFloatBuffer().put(v);
                os.write(b.array());
            }
        }
        return out;
    }
}
