/*
 * A PKCS#11 module for the tests that plays a module answering with garbage: it forwards every call to the module
 * named by DEVRIFT_GARBAGE_TARGET and, while the file named by DEVRIFT_GARBAGE_SWITCH holds "on", answers the length
 * query of C_Encrypt, C_Decrypt and C_Sign with (CK_ULONG)-1, and reports (CK_ULONG)-1 bytes written by C_Encrypt and
 * C_Decrypt and one byte too few by C_Sign — what a broken proxy does (Caml Crush's GCM answers). While it holds
 * "flaky", every other C_UnwrapKey and C_WrapKey that writes a key (the first of each pair; a C_WrapKey length
 * query is forwarded) answers CKR_ATTRIBUTE_VALUE_INVALID, and every other C_CreateObject CKR_TEMPLATE_INCONSISTENT,
 * without calling the module, the way SoftHSM2 2.6.1 now and then does under concurrency; while it holds "refuse",
 * every one does. Built by test.sh with cc against p11-kit's pkcs11.h.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "p11-kit/pkcs11.h"

static CK_FUNCTION_LIST list;
static CK_FUNCTION_LIST_PTR target;

/* The switch file's first line, at most 15 characters; "" when there is none. */
static void mode(char buffer[16])
{
  const char *path = getenv("DEVRIFT_GARBAGE_SWITCH");
  memset(buffer, 0, 16);
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return;
  size_t n = fread(buffer, 1, 15, f);
  fclose(f);
  buffer[n] = 0;
  buffer[strcspn(buffer, "\r\n")] = 0;
}

static int garbage(void)
{
  char buffer[16];
  mode(buffer);
  return strcmp(buffer, "on") == 0;
}

static unsigned long wrap_calls, create_calls;

/* True when this call (counted in *calls) is to be refused: every one while "refuse", every other one while "flaky". */
static int refuse_call(unsigned long *calls)
{
  char buffer[16];
  mode(buffer);
  if (strcmp(buffer, "refuse") == 0) return 1;
  return strcmp(buffer, "flaky") == 0 && __atomic_fetch_add(calls, 1, __ATOMIC_SEQ_CST) % 2 == 0;
}

static CK_RV create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR template, CK_ULONG count, CK_OBJECT_HANDLE_PTR object)
{
  if (refuse_call(&create_calls)) return CKR_TEMPLATE_INCONSISTENT;
  return target->C_CreateObject(s, template, count, object);
}

static CK_RV wrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                      CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (out != NULL && refuse_call(&wrap_calls)) return CKR_ATTRIBUTE_VALUE_INVALID;
  return target->C_WrapKey(s, m, wrapping, key, out, outLen);
}

static CK_RV unwrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
                        CK_ULONG inLen, CK_ATTRIBUTE_PTR template, CK_ULONG count, CK_OBJECT_HANDLE_PTR key)
{
  if (refuse_call(&wrap_calls)) return CKR_ATTRIBUTE_VALUE_INVALID;
  return target->C_UnwrapKey(s, m, unwrapping, in, inLen, template, count, key);
}

static CK_RV encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage() && out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
  CK_RV rv = target->C_Encrypt(s, in, inLen, out, outLen);
  if (rv == CKR_OK && garbage()) *outLen = (CK_ULONG)-1;
  return rv;
}

static CK_RV decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage() && out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
  CK_RV rv = target->C_Decrypt(s, in, inLen, out, outLen);
  if (rv == CKR_OK && garbage()) *outLen = (CK_ULONG)-1;
  return rv;
}

static CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inLen, CK_BYTE_PTR out, CK_ULONG_PTR outLen)
{
  if (garbage()) {
    if (out == NULL) { *outLen = (CK_ULONG)-1; return CKR_OK; }
    CK_RV rv = target->C_Sign(s, in, inLen, out, outLen);
    if (rv == CKR_OK) *outLen = *outLen - 1;
    return rv;
  }
  return target->C_Sign(s, in, inLen, out, outLen);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
  if (!target) {
    const char *path = getenv("DEVRIFT_GARBAGE_TARGET");
    void *module = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CK_C_GetFunctionList get = module ? (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList") : NULL;
    if (!get || get(&target) != CKR_OK) return CKR_GENERAL_ERROR;
    memcpy(&list, target, sizeof list);
    list.C_GetFunctionList = C_GetFunctionList;
    list.C_Encrypt = encrypt;
    list.C_Decrypt = decrypt;
    list.C_Sign = sign;
    list.C_WrapKey = wrap_key;
    list.C_UnwrapKey = unwrap_key;
    list.C_CreateObject = create_object;
  }
  *out = &list;
  return CKR_OK;
}
