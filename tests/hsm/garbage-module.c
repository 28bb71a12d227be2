/*
 * A PKCS#11 module for the tests that plays a module answering with garbage: it forwards every call to the module
 * named by DEVRIFT_GARBAGE_TARGET and, while the file named by DEVRIFT_GARBAGE_SWITCH holds "on", answers the length
 * query of C_Encrypt, C_Decrypt and C_Sign with (CK_ULONG)-1, and reports (CK_ULONG)-1 bytes written by C_Encrypt and
 * C_Decrypt and one byte too few by C_Sign — what a broken proxy does (Caml Crush's GCM answers). Built by test.sh
 * with cc against p11-kit's pkcs11.h.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "p11-kit/pkcs11.h"

static CK_FUNCTION_LIST list;
static CK_FUNCTION_LIST_PTR target;

static int garbage(void)
{
  const char *path = getenv("DEVRIFT_GARBAGE_SWITCH");
  char buffer[4] = {0};
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return 0;
  size_t n = fread(buffer, 1, 2, f);
  fclose(f);
  return n == 2 && buffer[0] == 'o' && buffer[1] == 'n';
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
  }
  *out = &list;
  return CKR_OK;
}
