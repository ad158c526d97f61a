package jdiffusion.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

/** The container formats a tensor file may come in, recognised by content (not by file extension). */
public enum Container {
    SAFETENSORS("safetensors"),
    /** torch.save since PyTorch 1.6: a stored zip of {@code <prefix>/data.pkl} and {@code <prefix>/data/<key>}. */
    TORCH_ZIP("pytorch zip"),
    /** torch.save before 1.6 (or with _use_new_zipfile_serialization=False): pickles back to back, then raw storages. */
    TORCH_LEGACY("pytorch legacy");

    /** File extensions model folders list: safetensors and the PyTorch pickle names. */
    public static final List<String> MODEL_EXTENSIONS = List.of(".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin");

    private final String label;

    Container(String label) {
        this.label = label;
    }

    /** How {@code info} names it: "safetensors", "pytorch zip", "pytorch legacy". */
    public String label() {
        return label;
    }

    @Override
    public String toString() {
        return label;
    }

    /** True when the file name ends with one of {@link #MODEL_EXTENSIONS} (case-insensitive). */
    public static boolean isModelFileName(String name) {
        String lower = name.toLowerCase(java.util.Locale.ROOT);
        for (String e : MODEL_EXTENSIONS) {
            if (lower.endsWith(e)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The container of a file from its first bytes: a safetensors header (a plausible 8-byte length followed by
     * '{'), a zip's local or end record signature, or a pickle PROTO opcode. Anything else is taken for safetensors,
     * whose reader then says what is wrong.
     */
    public static Container sniff(MemorySegment all) {
        long n = all.byteSize();
        if (n >= 9) {
            long headerLen = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLen >= 2 && headerLen <= SafeTensors.MAX_HEADER_BYTES && all.get(ValueLayout.JAVA_BYTE, 8) == '{') {
                return SAFETENSORS;
            }
        }
        if (n >= 4 && all.get(ValueLayout.JAVA_BYTE, 0) == 'P' && all.get(ValueLayout.JAVA_BYTE, 1) == 'K') {
            byte b2 = all.get(ValueLayout.JAVA_BYTE, 2);
            byte b3 = all.get(ValueLayout.JAVA_BYTE, 3);
            if ((b2 == 3 && b3 == 4) || (b2 == 5 && b3 == 6)) {
                return TORCH_ZIP;
            }
        }
        if (n >= 2 && (all.get(ValueLayout.JAVA_BYTE, 0) & 0xff) == 0x80) {
            int proto = all.get(ValueLayout.JAVA_BYTE, 1);
            if (proto >= 2 && proto <= 5) {
                return TORCH_LEGACY;
            }
        }
        return SAFETENSORS;
    }
}
