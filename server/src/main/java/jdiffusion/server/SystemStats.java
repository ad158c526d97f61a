package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** ComfyUI's /system_stats shape, filled with the JVM's facts (the engine runs on the CPU). */
final class SystemStats {
    private SystemStats() {
    }

    static ObjectNode json() {
        Runtime rt = Runtime.getRuntime();
        ObjectNode o = PromptStore.JSON.createObjectNode();
        ObjectNode sys = o.putObject("system");
        // Python's os.name, which ComfyUI reports and its clients parse
        sys.put("os", System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT).startsWith("windows") ? "nt"
                : "posix");
        sys.put("ram_total", rt.maxMemory());
        sys.put("ram_free", rt.maxMemory() - (rt.totalMemory() - rt.freeMemory()));
        sys.put("comfyui_version", "jdiffusion 0.1.0");
        sys.put("python_version", "none (Java " + Runtime.version() + ")");
        sys.put("pytorch_version", "none");
        sys.put("embedded_python", false);
        sys.put("java_version", Runtime.version().toString());
        sys.put("cpu_count", rt.availableProcessors());
        sys.putArray("argv");
        ArrayNode devices = o.putArray("devices");
        ObjectNode cpu = devices.addObject();
        cpu.put("name", "cpu");
        cpu.put("type", "cpu");
        cpu.put("index", 0);
        cpu.put("vram_total", 0);
        cpu.put("vram_free", 0);
        cpu.put("torch_vram_total", 0);
        cpu.put("torch_vram_free", 0);
        return o;
    }
}
