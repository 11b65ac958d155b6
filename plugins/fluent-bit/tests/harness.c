/* Loads a Fluent Bit external output plugin the way Fluent Bit's Go proxy does
 * (src/flb_plugin_proxy.c, src/proxy/go/go.c): dlopen, symbol lookup, FLBPluginRegister with
 * the definition structure, FLBPluginInit with a plugin structure whose API's property getter
 * answers from the -p options, FLBPluginFlushCtx on a 64 KiB stack (Fluent Bit flushes on
 * coroutines with small stacks), FLBPluginExitCtx, dlclose.
 *
 * usage: harness PLUGIN.so [-p key=value]... [-f TAG CHUNKFILE]...
 * prints: "register <type> <proxy> <name>", "init <code>", "flush <n> <code>", "exit <code>"
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ucontext.h>

struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
    void *config_map;
};

struct flb_api {
    char *(*output_get_property)(const char *, void *);
    void *other[8];
};

struct flb_plugin_proxy_context {
    void *remote_context;
    void *proxy;
};

struct flbgo_output_plugin {
    char *name;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
};

/* The "output instance": the -p properties. */
struct props {
    int n;
    char *keys[64];
    char *values[64];
};

static char *get_property(const char *key, void *o_ins)
{
    struct props *p = o_ins;
    for (int i = 0; i < p->n; i++) {
        if (strcasecmp(p->keys[i], key) == 0) {
            return p->values[i];
        }
    }
    return NULL;
}

typedef int (*register_fn)(struct flb_plugin_proxy_def *);
typedef int (*init_fn)(struct flbgo_output_plugin *);
typedef int (*flush_ctx_fn)(void *, const void *, size_t, char *);
typedef int (*exit_ctx_fn)(void *);

/* One flush, run on a coroutine-sized stack. */
static struct {
    flush_ctx_fn fn;
    void *ctx;
    void *data;
    size_t len;
    char *tag;
    int ret;
} job;
static ucontext_t main_uc, co_uc;

static void run_flush(void)
{
    job.ret = job.fn(job.ctx, job.data, job.len, job.tag);
}

static int flush_on_small_stack(void)
{
    size_t size = 64 * 1024;
    void *stack = malloc(size);
    getcontext(&co_uc);
    co_uc.uc_stack.ss_sp = stack;
    co_uc.uc_stack.ss_size = size;
    co_uc.uc_link = &main_uc;
    makecontext(&co_uc, run_flush, 0);
    swapcontext(&main_uc, &co_uc);
    free(stack);
    return job.ret;
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(3);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? n : 1);
    if (n > 0 && fread(buf, 1, n, f) != (size_t) n) {
        perror(path);
        exit(3);
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: harness PLUGIN.so [-p k=v]... [-f TAG FILE]...\n");
        return 2;
    }
    void *dso = dlopen(argv[1], RTLD_LAZY);
    if (!dso) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    register_fn cb_register = (register_fn) dlsym(dso, "FLBPluginRegister");
    init_fn cb_init = (init_fn) dlsym(dso, "FLBPluginInit");
    flush_ctx_fn cb_flush_ctx = (flush_ctx_fn) dlsym(dso, "FLBPluginFlushCtx");
    exit_ctx_fn cb_exit_ctx = (exit_ctx_fn) dlsym(dso, "FLBPluginExitCtx");
    if (!cb_register || !cb_init || !cb_flush_ctx || !cb_exit_ctx) {
        fprintf(stderr, "missing symbols\n");
        return 3;
    }

    struct flb_plugin_proxy_def def;
    memset(&def, 0, sizeof(def));
    int ret = cb_register(&def);
    printf("register %d %d %d %s\n", ret, def.type, def.proxy, def.name ? def.name : "(null)");

    static struct props props;
    int i = 2;
    for (; i + 1 < argc && strcmp(argv[i], "-p") == 0; i += 2) {
        char *kv = strdup(argv[i + 1]);
        char *eq = strchr(kv, '=');
        if (!eq || props.n == 64) {
            fprintf(stderr, "bad property %s\n", argv[i + 1]);
            return 2;
        }
        *eq = '\0';
        props.keys[props.n] = kv;
        props.values[props.n] = eq + 1;
        props.n++;
    }

    struct flb_api api;
    memset(&api, 0, sizeof(api));
    api.output_get_property = get_property;
    struct flb_plugin_proxy_context ctx = { NULL, NULL };
    struct flbgo_output_plugin plugin = { strdup(def.name ? def.name : ""), &api, &props, &ctx };
    ret = cb_init(&plugin);
    printf("init %d\n", ret);
    fflush(stdout);
    if (ret != 1) {
        dlclose(dso);
        return 0;
    }

    int n = 0;
    for (; i + 2 < argc && strcmp(argv[i], "-f") == 0; i += 3) {
        job.fn = cb_flush_ctx;
        job.ctx = ctx.remote_context;
        job.tag = argv[i + 1];
        job.data = read_file(argv[i + 2], &job.len);
        ret = flush_on_small_stack();
        free(job.data);
        printf("flush %d %d\n", ++n, ret);
        fflush(stdout);
    }
    printf("exit %d\n", cb_exit_ctx(ctx.remote_context));
    dlclose(dso);
    free(plugin.name);
    return 0;
}
