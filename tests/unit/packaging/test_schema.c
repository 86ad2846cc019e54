/* Pins the JSON output of `sysextctl verify --json` to schemas/verify-output.schema.json (keys and
 * types, both ways: every documented key is there, nothing undocumented appears) and checks that
 * schemas/assess-output.schema.json accepts the documented shape. The validator below implements
 * the JSON Schema subset the two schemas use: type, enum, required, properties,
 * additionalProperties: false, items, pattern, and $ref to "#/$defs/x" or "FILE#/$defs/x". */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkgfixture.h"

#define SYSEXTCTL SYSEXT_BINARY_DIR "/sysextctl/sysextctl"
#define SCHEMAS SYSEXT_SOURCE_DIR "/schemas"

TestSuite(schema, .init = pkg_setup, .fini = pkg_teardown);

static json_object *load_json(const char *path)
{
    json_object *o = json_object_from_file(path);
    cr_assert_not_null(o, "cannot parse %s", path);
    return o;
}

static bool type_is(json_object *v, const char *t)
{
    json_type jt = json_object_get_type(v);
    if (!strcmp(t, "object"))
        return jt == json_type_object;
    if (!strcmp(t, "array"))
        return jt == json_type_array;
    if (!strcmp(t, "string"))
        return jt == json_type_string;
    if (!strcmp(t, "boolean"))
        return jt == json_type_boolean;
    if (!strcmp(t, "integer"))
        return jt == json_type_int;
    if (!strcmp(t, "number"))
        return jt == json_type_int || jt == json_type_double;
    if (!strcmp(t, "null"))
        return jt == json_type_null;
    cr_assert_fail("schema uses unknown type '%s'", t);
    return false;
}

/* Validate v against schema s; `root` resolves "#/..." refs. Appends "where: why" to err. */
static bool check(json_object *v, json_object *s, json_object *root, const char *where, char *err,
                  size_t errsz);

static json_object *resolve(const char *ref, json_object *root, json_object **new_root)
{
    const char *hash = strchr(ref, '#');
    cr_assert_not_null(hash, "unsupported $ref %s", ref);
    *new_root = root;
    if (hash != ref) { /* another schema file next to this one */
        char path[512];
        snprintf(path, sizeof(path), "%s/%.*s", SCHEMAS, (int)(hash - ref), ref);
        *new_root = load_json(path); /* leaked per call: test-only, tiny */
    }
    json_object *cur = *new_root;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", hash + 1);
    for (char *tok = strtok(buf, "/"); tok; tok = strtok(NULL, "/")) {
        cr_assert(json_object_object_get_ex(cur, tok, &cur), "$ref %s: no '%s'", ref, tok);
    }
    return cur;
}

static bool fail(char *err, size_t errsz, const char *where, const char *why)
{
    size_t n = strlen(err);
    snprintf(err + n, errsz - n, "%s: %s; ", where, why);
    return false;
}

static bool check(json_object *v, json_object *s, json_object *root, const char *where, char *err,
                  size_t errsz)
{
    json_object *k;
    bool ok = true;
    if (json_object_object_get_ex(s, "$ref", &k)) {
        json_object *r2;
        json_object *target = resolve(json_object_get_string(k), root, &r2);
        ok = check(v, target, r2, where, err, errsz) && ok;
    }
    if (json_object_object_get_ex(s, "type", &k)) {
        bool any = false;
        if (json_object_is_type(k, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(k); i++)
                any = any || type_is(v, json_object_get_string(json_object_array_get_idx(k, i)));
        } else {
            any = type_is(v, json_object_get_string(k));
        }
        if (!any)
            return fail(err, errsz, where, "wrong type");
    }
    if (json_object_object_get_ex(s, "enum", &k)) {
        bool any = false;
        for (size_t i = 0; i < json_object_array_length(k); i++)
            any = any || json_object_equal(v, json_object_array_get_idx(k, i));
        if (!any)
            ok = fail(err, errsz, where, "not one of the enum values");
    }
    if (json_object_object_get_ex(s, "pattern", &k) && json_object_is_type(v, json_type_string)) {
        regex_t re;
        cr_assert_eq(regcomp(&re, json_object_get_string(k), REG_EXTENDED | REG_NOSUB), 0);
        if (regexec(&re, json_object_get_string(v), 0, NULL, 0) != 0)
            ok = fail(err, errsz, where, "does not match the pattern");
        regfree(&re);
    }
    if (json_object_is_type(v, json_type_object)) {
        json_object *props = NULL, *add;
        json_object_object_get_ex(s, "properties", &props);
        if (json_object_object_get_ex(s, "required", &k)) {
            for (size_t i = 0; i < json_object_array_length(k); i++) {
                const char *name = json_object_get_string(json_object_array_get_idx(k, i));
                if (!json_object_object_get_ex(v, name, NULL)) {
                    char w[256];
                    snprintf(w, sizeof(w), "%s.%s", where, name);
                    ok = fail(err, errsz, w, "required key missing");
                }
            }
        }
        bool closed = json_object_object_get_ex(s, "additionalProperties", &add) &&
                      !json_object_get_boolean(add);
        json_object_object_foreach(v, name, val)
        {
            char w[256];
            snprintf(w, sizeof(w), "%s.%s", where, name);
            json_object *ps;
            if (props && json_object_object_get_ex(props, name, &ps))
                ok = check(val, ps, root, w, err, errsz) && ok;
            else if (closed)
                ok = fail(err, errsz, w, "key not allowed");
        }
    }
    if (json_object_is_type(v, json_type_array) && json_object_object_get_ex(s, "items", &k)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            char w[256];
            snprintf(w, sizeof(w), "%s[%zu]", where, i);
            ok = check(json_object_array_get_idx(v, i), k, root, w, err, errsz) && ok;
        }
    }
    return ok;
}

static bool validate(json_object *doc, const char *schema_file, char *err, size_t errsz)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", SCHEMAS, schema_file);
    json_object *s = load_json(path);
    err[0] = '\0';
    bool ok = check(doc, s, s, "$", err, errsz);
    json_object_put(s);
    return ok;
}

/* Every key of an output object is documented: in the top level or in $defs/code. */
static void expect_documented(json_object *doc)
{
    json_object *s = load_json(SCHEMAS "/verify-output.schema.json"), *top, *defs, *code, *cprops;
    cr_assert(json_object_object_get_ex(s, "properties", &top));
    cr_assert(json_object_object_get_ex(s, "$defs", &defs));
    cr_assert(json_object_object_get_ex(defs, "code", &code));
    cr_assert(json_object_object_get_ex(code, "properties", &cprops));
    json_object_object_foreach(doc, name, val)
    {
        (void)val;
        cr_expect(json_object_object_get_ex(top, name, NULL) || json_object_object_get_ex(cprops, name, NULL),
                  "verify --json prints '%s', which verify-output.schema.json does not document", name);
    }
    json_object_put(s);
}

static const char entitlements[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n"
    "<key>com.apple.developer.driverkit</key><true/>\n"
    "<key>com.apple.developer.driverkit.transport.usb</key>\n"
    "<array><dict><key>idVendor</key><integer>1234</integer></dict></array>\n"
    "</dict>\n</plist>\n";

/* A signed dext in the scratch dir. */
static void make_dext(bool sign)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/ent.plist", pkg_tmp);
    cr_assert(pkg_write(p, entitlements));
    cr_assert_eq(pkg_run("cd '%s' && '%s' build --type dext --info '%s/tests/data/bundle/dext.plist' "
                         "--executable /bin/true --output T.dext",
                         pkg_tmp, SYSEXTCTL, SYSEXT_SOURCE_DIR),
                 0);
    if (sign)
        cr_assert_eq(pkg_run("cd '%s' && '%s' sign --adhoc --entitlements ent.plist T.dext", pkg_tmp, SYSEXTCTL), 0);
}

static json_object *verify_json(const char *flags, int want_status)
{
    int st;
    char *out = pkg_capture(&st, "cd '%s' && '%s' verify %s --json T.dext 2>/dev/null", pkg_tmp, SYSEXTCTL, flags);
    cr_assert_eq(st, want_status, "verify %s exited %d: %s", flags, st, out);
    json_object *o = json_tokener_parse(out);
    cr_assert_not_null(o, "verify --json printed no JSON: %s", out);
    free(out);
    return o;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, key, &v), "no key %s", key);
    return json_object_get_string(v);
}

Test(schema, valid_signed_bundle)
{
    make_dext(true);
    json_object *o = verify_json("--strict --deep", 0);
    char err[2048];
    cr_expect(validate(o, "verify-output.schema.json", err, sizeof(err)), "%s", err);
    expect_documented(o);
    cr_expect_str_eq(str(o, "valid"), "true");
    cr_expect_str_eq(str(o, "adhoc"), "true");
    cr_expect_str_eq(str(o, "strict"), "true");
    cr_expect_str_eq(str(o, "identifier"), "com.example.test.driver");
    cr_expect_eq(strlen(str(o, "cdhash")), 40);
    json_object_put(o);
}

Test(schema, tampered_bundle_rejected)
{
    make_dext(true);
    cr_assert_eq(pkg_run("echo x >> '%s/T.dext/true'", pkg_tmp), 0);
    json_object *o = verify_json("--strict --deep", 1);
    char err[2048];
    cr_expect(validate(o, "verify-output.schema.json", err, sizeof(err)), "%s", err);
    expect_documented(o);
    cr_expect_str_eq(str(o, "valid"), "false");
    json_object *probs;
    cr_assert(json_object_object_get_ex(o, "problems", &probs));
    cr_assert_gt(json_object_array_length(probs), 0);
    cr_expect_str_eq(str(json_object_array_get_idx(probs, 0), "severity"), "error");
    json_object_put(o);
}

Test(schema, unsigned_bundle)
{
    make_dext(false);
    json_object *o = verify_json("", 1);
    char err[2048];
    cr_expect(validate(o, "verify-output.schema.json", err, sizeof(err)), "%s", err);
    cr_expect_str_eq(str(o, "signed"), "false");
    cr_expect_null(str(o, "cdhash"));
    json_object_put(o);
}

/* The validator is not a rubber stamp: wrong types, missing keys, stray keys and bad patterns fail. */
Test(schema, validator_rejects)
{
    static const char *const bad[] = {
        "{\"path\":1,\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":null,\"nested\":[],\"strict\":false,\"deep\":false,\"problems\":[]}",
        "{\"path\":\"x\",\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":null,\"nested\":[],\"strict\":false,\"problems\":[]}",
        "{\"path\":\"x\",\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":\"ABC\",\"nested\":[],\"strict\":false,\"deep\":false,\"problems\":[]}",
        "{\"path\":\"x\",\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":null,\"nested\":[{\"path\":\"y\"}],\"strict\":false,\"deep\":false,\"problems\":[]}",
        "{\"path\":\"x\",\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":null,\"nested\":[],\"strict\":false,\"deep\":false,\"problems\":[{\"severity\":\"fatal\","
        "\"code\":\"c\",\"path\":null,\"key\":null,\"message\":\"m\"}]}",
        "{\"path\":\"x\",\"valid\":true,\"signed\":true,\"adhoc\":false,\"identifier\":null,\"team_id\":null,"
        "\"cdhash\":null,\"nested\":[],\"strict\":false,\"deep\":false,\"problems\":[{\"severity\":\"error\","
        "\"code\":\"c\",\"path\":null,\"key\":null,\"message\":\"m\",\"extra\":1}]}",
    };
    char err[2048];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_object *o = json_tokener_parse(bad[i]);
        cr_assert_not_null(o);
        cr_expect(!validate(o, "verify-output.schema.json", err, sizeof(err)), "bad document %zu accepted", i);
        json_object_put(o);
    }
}

Test(schema, assess_output_shape)
{
    static const char accepted[] =
        "{\"path\":\"A.app\",\"accepted\":true,\"verdict\":\"accepted\",\"reason\":\"Notarized Developer ID\","
        "\"source\":\"Notarized Developer ID\",\"team_id\":\"ABCDE12345\","
        "\"cdhash\":\"96ac4b00bf5458398e7ceec509c95855a05caec7\",\"ticket\":\"stapled\",\"problems\":[]}";
    static const char rejected[] =
        "{\"path\":\"A.app\",\"accepted\":false,\"verdict\":\"rejected\",\"reason\":\"the ticket was revoked\","
        "\"ticket\":\"revoked\",\"problems\":[{\"severity\":\"error\",\"code\":\"ticket-revoked\",\"path\":\"A.app\","
        "\"key\":null,\"message\":\"revoked\"}]}";
    static const char bad[] = "{\"path\":\"A.app\",\"accepted\":\"yes\",\"reason\":\"x\"}";
    static const char bad2[] = "{\"path\":\"A.app\",\"accepted\":true}";
    char err[2048];
    json_object *o = json_tokener_parse(accepted);
    cr_expect(validate(o, "assess-output.schema.json", err, sizeof(err)), "%s", err);
    json_object_put(o);
    o = json_tokener_parse(rejected);
    cr_expect(validate(o, "assess-output.schema.json", err, sizeof(err)), "%s", err);
    json_object_put(o);
    o = json_tokener_parse(bad);
    cr_expect(!validate(o, "assess-output.schema.json", err, sizeof(err)));
    json_object_put(o);
    o = json_tokener_parse(bad2);
    cr_expect(!validate(o, "assess-output.schema.json", err, sizeof(err)));
    json_object_put(o);
}

/* scripts/ci-signing-check: 0 when every bundle verifies, 1 when one is rejected (and says why),
 * 2 when it cannot check; the JSON reports it keeps follow the schema. */
Test(schema, ci_signing_check_script)
{
    if (pkg_run("command -v jq") != 0)
        cr_skip_test("jq is not installed (scripts/setup installs it)");
    make_dext(true);
    cr_assert_eq(pkg_run("cd '%s' && cp -a T.dext Good.dext && '%s' build --type dext --info "
                         "'%s/tests/data/bundle/dext.plist' --executable /bin/true --output Unsigned.dext",
                         pkg_tmp, SYSEXTCTL, SYSEXT_SOURCE_DIR),
                 0);
    const char *script = SYSEXT_SOURCE_DIR "/scripts/ci-signing-check";
    int st;
    char *out = pkg_capture(&st, "cd '%s' && '%s' --sysextctl '%s' --report-dir rep Good.dext", pkg_tmp, script,
                            SYSEXTCTL);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect_not_null(strstr(out, "PASS verify  Good.dext"), "%s", out);
    free(out);
    out = pkg_capture(&st, "cd '%s' && '%s' --sysextctl '%s' --report-dir rep Good.dext Unsigned.dext", pkg_tmp,
                      script, SYSEXTCTL);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect_not_null(strstr(out, "FAIL verify  Unsigned.dext\n  error: Unsigned.dext: "), "%s", out);
    cr_expect_not_null(strstr(out, "(unsigned)"), "%s", out);
    free(out);
    char p[400];
    snprintf(p, sizeof(p), "%s/rep/Unsigned.dext.verify.json", pkg_tmp);
    json_object *o = load_json(p);
    char err[2048];
    cr_expect(validate(o, "verify-output.schema.json", err, sizeof(err)), "%s", err);
    json_object_put(o);
    out = pkg_capture(&st, "cd '%s' && '%s' --sysextctl '%s' --report-dir rep Missing.dext", pkg_tmp, script,
                      SYSEXTCTL);
    cr_expect_eq(st, 2, "a missing bundle must be exit 2: %s", out);
    free(out);
}
